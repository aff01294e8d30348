package images

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
)

// recipeVersion is part of every cache key: bump it whenever the layout,
// the init script's contract or the archive format changes in a way the
// file contents alone would not reveal.
const recipeVersion = "yank-initramfs-v1"

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
)

// entry is one file in the guest's root filesystem. Paths are absolute
// guest paths ("/bin/busybox").
type entry struct {
	path   string
	kind   entryKind
	perm   fs.FileMode // permission bits only
	data   []byte      // file contents
	target string      // symlink target
	source string      // host file it came from, for messages only
}

// tree collects entries by guest path. Later additions of a regular file
// replace symlinks (a real binary wins over a busybox applet link), and two
// different files at one path are an error.
type tree struct {
	entries map[string]*entry
}

func newTree() *tree { return &tree{entries: map[string]*entry{}} }

func (t *tree) dir(p string) {
	p = path.Clean(p)
	if e, ok := t.entries[p]; ok && e.kind == kindDir {
		return
	}
	t.entries[p] = &entry{path: p, kind: kindDir, perm: 0o755}
}

func (t *tree) symlink(p, target string) {
	p = path.Clean(p)
	if _, ok := t.entries[p]; ok {
		return // never let a link shadow a real file
	}
	t.entries[p] = &entry{path: p, kind: kindSymlink, perm: 0o777, target: target}
}

func (t *tree) file(p string, perm fs.FileMode, data []byte, source string) error {
	p = path.Clean(p)
	if old, ok := t.entries[p]; ok && old.kind == kindFile {
		if string(old.data) == string(data) {
			return nil
		}
		return fmt.Errorf("images: %s would hold both %s and %s", p, old.source, source)
	}
	// Normalise permissions so the host's umask does not change the key.
	if perm&0o111 != 0 {
		perm = 0o755
	} else {
		perm = 0o644
	}
	t.entries[p] = &entry{path: p, kind: kindFile, perm: perm, data: data, source: source}
	return nil
}

// sorted returns every entry plus any missing parent directories, sorted by
// path. The kernel's initramfs unpacker does not create parents, and a
// parent path is a prefix of its children, so it always sorts first.
func (t *tree) sorted() []*entry {
	for p := range t.entries {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := t.entries[d]; !ok {
				t.entries[d] = &entry{path: d, kind: kindDir, perm: 0o755}
			}
		}
	}
	return slices.SortedFunc(maps.Values(t.entries), func(a, b *entry) int { return strings.Compare(a.path, b.path) })
}

// key hashes the recipe version and every entry's path, kind, mode and
// contents, length-prefixed so no two different trees hash alike.
func key(entries []*entry) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(recipeVersion))
	for _, e := range entries {
		field([]byte(e.path))
		field([]byte(fmt.Sprintf("%d %o", e.kind, e.perm)))
		switch e.kind {
		case kindFile:
			field(e.data)
		case kindSymlink:
			field([]byte(e.target))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// archiveName is the name an entry has inside the cpio archive: relative,
// as the kernel and cpio(1) expect.
func archiveName(p string) string { return strings.TrimPrefix(p, "/") }
