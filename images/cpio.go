package images

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/cavaliergopher/cpio"
)

// writeArchive writes entries as a gzip-compressed newc ("070701") cpio
// archive, the format the kernel unpacks as an initramfs.
//
// github.com/cavaliergopher/cpio writes newc with no dependencies. It cannot
// write device numbers, so the image has no device nodes: /dev comes from
// devtmpfs, and /dev/console from the kernel's built-in initramfs, which the
// kernel always unpacks before ours.
//
// Output is deterministic: entries arrive sorted, mtimes are 0, owners are
// root, inodes are assigned in order, and the gzip header carries no name
// or time.
func writeArchive(w io.Writer, entries []*entry) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestCompression)
	if err != nil {
		return err
	}
	cw := cpio.NewWriter(zw)
	for i, e := range entries {
		hdr := &cpio.Header{
			Name:  archiveName(e.path),
			Mode:  cpio.FileMode(e.perm),
			Links: 1,
			Inode: int64(i + 1),
		}
		var body []byte
		switch e.kind {
		case kindDir:
			hdr.Mode |= cpio.TypeDir
			hdr.Links = 2
		case kindFile:
			hdr.Mode |= cpio.TypeReg
			body = e.data
		case kindSymlink:
			// newc stores a symlink's target as its file data.
			hdr.Mode |= cpio.TypeSymlink
			hdr.Linkname = e.target
			body = []byte(e.target)
		}
		hdr.Size = int64(len(body))
		if err := cw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("images: cpio header for %s: %w", e.path, err)
		}
		if _, err := cw.Write(body); err != nil {
			return fmt.Errorf("images: cpio data for %s: %w", e.path, err)
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
