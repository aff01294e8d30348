package images

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadyMarker is the console line /init prints once qemu-ga holds the
// agent port open. Kernel messages share the console, so match it as a
// substring of a line.
const ReadyMarker = "YANK-READY"

// AgentMissingMarker starts the console line /init prints instead of
// ReadyMarker, followed by " reason=...".
const AgentMissingMarker = "YANK-AGENT-MISSING"

// AgentPortName is the virtio-serial port name /init looks for; give the
// QEMU virtserialport this name.
const AgentPortName = "org.qemu.guest_agent.0"

//go:embed init.sh
var initScript []byte

// Options selects what goes into an image. The zero value is a usable
// image for kernels with virtio built in.
type Options struct {
	CacheDir      string   // "" = default root (see CacheRoot)
	ModulesDir    string   // "" = no modules (kernels built with everything =y)
	Modules       []string // e.g. virtio_pci, virtio_blk, virtio_console (deps added automatically)
	ExtraBinaries []string // host binaries to include with their libs, at the same path
	Busybox       string   // "" = /bin/busybox
	Agent         string   // "" = /usr/sbin/qemu-ga
}

// Image is a built initramfs in the cache.
type Image struct {
	Path string // <cache root>/images/<Key>.cpio.gz
	Key  string // SHA-256 of the inputs
	Size int64  // bytes
}

// Build returns the image for opts, building it only when the cache has no
// image for the same inputs. The key covers every file's guest path, mode
// and contents, the init script and recipeVersion, so it is computed (all
// inputs are read and hashed, ~10 MB) on every call, cache hit or not.
func Build(ctx context.Context, opts Options) (Image, error) {
	t, err := assemble(ctx, opts)
	if err != nil {
		return Image{}, err
	}
	entries := t.sorted()
	k := key(entries)

	root := opts.CacheDir
	if root == "" {
		if root, err = CacheRoot(); err != nil {
			return Image{}, err
		}
	}
	dir := filepath.Join(root, "images")
	img := Image{Path: filepath.Join(dir, k+".cpio.gz"), Key: k}
	if st, err := os.Stat(img.Path); err == nil {
		img.Size = st.Size()
		return img, nil
	}
	if err := ctx.Err(); err != nil {
		return Image{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("images: cache dir: %w", err)
	}
	if img.Size, err = writeAtomic(img.Path, entries); err != nil {
		return Image{}, err
	}
	return img, nil
}

// assemble gathers every guest file for opts.
func assemble(ctx context.Context, opts Options) (*tree, error) {
	busybox, agent := opts.Busybox, opts.Agent
	if busybox == "" {
		busybox = "/bin/busybox"
	}
	if agent == "" {
		agent = "/usr/sbin/qemu-ga"
	}
	t := newTree()
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/var/run", "/etc", "/root", "/mnt"} {
		t.dir(d)
	}
	if err := t.file("/init", 0o755, initScript, "init.sh"); err != nil {
		return nil, err
	}
	// Enough of /etc for tools that look users up (ls -l, id, qemu-ga).
	if err := t.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"), "passwd"); err != nil {
		return nil, err
	}
	if err := t.file("/etc/group", 0o644, []byte("root:x:0:\n"), "group"); err != nil {
		return nil, err
	}
	if err := t.addBusybox(ctx, busybox); err != nil {
		return nil, err
	}
	if _, err := os.Stat(agent); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("images: qemu guest agent %s not found; install qemu-guest-agent (apt-get install qemu-guest-agent)", agent)
	}
	if err := t.addBinary(agent, "/usr/sbin/qemu-ga"); err != nil {
		return nil, err
	}
	for _, bin := range opts.ExtraBinaries {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, err
		}
		if err := t.addBinary(abs, abs); err != nil {
			return nil, fmt.Errorf("%w (from ExtraBinaries)", err)
		}
	}
	if len(opts.Modules) > 0 {
		if opts.ModulesDir == "" {
			return nil, fmt.Errorf("images: Modules %v given without ModulesDir (e.g. /lib/modules/<release>)", opts.Modules)
		}
		if err := t.addModules(opts.ModulesDir, opts.Modules); err != nil {
			return nil, err
		}
	}
	return t, ctx.Err()
}

// writeAtomic writes the archive to a temporary file next to dst and
// renames it into place, so readers never see a partial image and
// concurrent builders of the same key both succeed.
func writeAtomic(dst string, entries []*entry) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*.cpio.gz")
	if err != nil {
		return 0, fmt.Errorf("images: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := writeArchive(f, entries); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return 0, fmt.Errorf("images: %w", err)
	}
	return st.Size(), nil
}
