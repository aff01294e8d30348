package libvirt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/machine"
)

// Kernels and initramfs images reach the libvirt host as volumes in a
// storage pool, uploaded through libvirt (virStorageVolUpload) on the same
// connection as everything else: no shared filesystem or scp set up by the
// user. Volumes are named by content ("yank-<sha256 prefix>-<file name>"),
// so each file is uploaded once per host and reused by every guest and
// every later run. A second, empty volume "<name>.done" is created after a
// complete upload; a volume without it (an upload cut short) is replaced.

type bootFiles struct{ kernel, initrd string }

type volumeUpload struct {
	mu   sync.Mutex
	path string // host path once uploaded
}

func (b *Backend) uploadBootFiles(ctx context.Context, l *golibvirt.Libvirt, spec machine.Spec, log *slog.Logger) (bootFiles, error) {
	pool, err := b.ensurePool(ctx, l)
	if err != nil {
		return bootFiles{}, err
	}
	var f bootFiles
	if f.kernel, err = b.uploadFile(ctx, l, pool, spec.Kernel, log); err != nil {
		return f, err
	}
	if f.initrd, err = b.uploadFile(ctx, l, pool, spec.Initrd, log); err != nil {
		return f, err
	}
	return f, nil
}

// ensurePool finds the storage pool, starting it if inactive, or creates
// it as a transient dir pool.
func (b *Backend) ensurePool(ctx context.Context, l *golibvirt.Libvirt) (golibvirt.StoragePool, error) {
	name := b.storagePool()
	pool, err := call(ctx, func() (golibvirt.StoragePool, error) { return l.StoragePoolLookupByName(name) })
	if err == nil {
		state, err := call(ctx, func() (uint8, error) {
			st, _, _, _, err := l.StoragePoolGetInfo(pool)
			return st, err
		})
		if err != nil {
			return pool, fmt.Errorf("storage pool %s: %w", name, err)
		}
		if golibvirt.StoragePoolState(state) != golibvirt.StoragePoolRunning {
			if _, err := call(ctx, func() (struct{}, error) { return struct{}{}, l.StoragePoolCreate(pool, 0) }); err != nil {
				return pool, fmt.Errorf("starting storage pool %s: %w", name, err)
			}
		}
		return pool, nil
	}
	if !isLibvirtCode(err, golibvirt.ErrNoStoragePool) {
		return pool, fmt.Errorf("storage pool %s: %w", name, err)
	}
	xmlDesc := fmt.Sprintf("<pool type='dir'><name>%s</name><target><path>%s</path><permissions><mode>0755</mode></permissions></target></pool>",
		esc(name), esc(b.poolDir()))
	pool, err = call(ctx, func() (golibvirt.StoragePool, error) {
		return l.StoragePoolCreateXML(xmlDesc, golibvirt.StoragePoolCreateWithBuild)
	})
	if err != nil {
		// Another yank may have created it in the meantime.
		if p, lerr := call(ctx, func() (golibvirt.StoragePool, error) { return l.StoragePoolLookupByName(name) }); lerr == nil {
			return p, nil
		}
		return pool, fmt.Errorf("creating storage pool %s at %s: %w", name, b.poolDir(), err)
	}
	return pool, nil
}

// uploadFile makes sure the file's content is a volume in pool and returns
// the volume's path on the host.
func (b *Backend) uploadFile(ctx context.Context, l *golibvirt.Libvirt, pool golibvirt.StoragePool, path string, log *slog.Logger) (string, error) {
	sum, size, err := fileDigest(path)
	if err != nil {
		return "", err
	}
	name := volumeName(sum, path)
	b.mu.Lock()
	if b.volumes == nil {
		b.volumes = map[string]*volumeUpload{}
	}
	u := b.volumes[name]
	if u == nil {
		u = &volumeUpload{}
		b.volumes[name] = u
	}
	b.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.path != "" {
		return u.path, nil
	}
	lookup := func(n string) (golibvirt.StorageVol, error) {
		return call(ctx, func() (golibvirt.StorageVol, error) { return l.StorageVolLookupByName(pool, n) })
	}
	vol, err := lookup(name)
	if err == nil {
		// Complete, being uploaded by someone else, or cut short.
		p, err := waitUploaded(ctx, l, lookup, name)
		if err == nil {
			u.path = p
			log.Info("boot file already on the libvirt host", "file", path, "volume", name)
			return p, nil
		}
		if !errors.Is(err, errUploadStalled) {
			return "", err
		}
		log.Info("replacing a cut-short upload", "volume", name)
		call(ctx, func() (struct{}, error) { return struct{}{}, l.StorageVolDelete(vol, 0) })
	} else if !isLibvirtCode(err, golibvirt.ErrNoStorageVol) {
		return "", fmt.Errorf("volume %s: %w", name, err)
	}
	start := time.Now()
	vol, err = call(ctx, func() (golibvirt.StorageVol, error) { return l.StorageVolCreateXML(pool, volumeXML(name, size), 0) })
	if isLibvirtCode(err, golibvirt.ErrStorageVolExist) {
		// Another connection (another yank, or another URI of the same
		// host) is uploading it: wait for its marker.
		p, err := waitUploaded(ctx, l, lookup, name)
		if err == nil {
			u.path = p
		}
		return p, err
	}
	if err != nil {
		return "", fmt.Errorf("creating volume %s: %w", name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = call(ctx, func() (struct{}, error) { return struct{}{}, l.StorageVolUpload(vol, f, 0, uint64(size), 0) })
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		call(dctx, func() (struct{}, error) { return struct{}{}, l.StorageVolDelete(vol, 0) })
		cancel()
		return "", fmt.Errorf("uploading %s to volume %s: %w", path, name, err)
	}
	if _, err := call(ctx, func() (golibvirt.StorageVol, error) {
		return l.StorageVolCreateXML(pool, volumeXML(name+".done", 0), 0)
	}); err != nil && !isLibvirtCode(err, golibvirt.ErrStorageVolExist) {
		return "", fmt.Errorf("marking volume %s complete: %w", name, err)
	}
	p, err := call(ctx, func() (string, error) { return l.StorageVolGetPath(vol) })
	if err != nil {
		return "", err
	}
	u.path = p
	log.Info("uploaded boot file to the libvirt host", "file", path, "volume", name, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
	return p, nil
}

// errUploadStalled: a volume without its marker whose allocation has not
// grown for uploadStall: its uploader is gone.
var errUploadStalled = errors.New("upload stalled")

const uploadStall = 5 * time.Second

// waitUploaded returns the volume's path once its ".done" marker exists,
// waiting while another uploader makes progress; errUploadStalled when the
// volume stops growing without a marker.
func waitUploaded(ctx context.Context, l *golibvirt.Libvirt, lookup func(string) (golibvirt.StorageVol, error), name string) (string, error) {
	var lastAlloc uint64
	lastChange := time.Now()
	for {
		if _, err := lookup(name + ".done"); err == nil {
			vol, err := lookup(name)
			if err != nil {
				return "", err
			}
			return call(ctx, func() (string, error) { return l.StorageVolGetPath(vol) })
		}
		vol, err := lookup(name)
		if isLibvirtCode(err, golibvirt.ErrNoStorageVol) && time.Since(lastChange) <= uploadStall {
			// libvirtd briefly loses a volume another connection is
			// creating ("no storage vol with matching path", seen with
			// two connections to one daemon under load): look again.
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("waiting for the upload of volume %s: %w", name, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
		alloc, err := call(ctx, func() (uint64, error) {
			_, _, a, err := l.StorageVolGetInfo(vol)
			return a, err
		})
		if err != nil {
			return "", fmt.Errorf("volume %s: %w", name, err)
		}
		if alloc != lastAlloc {
			lastAlloc, lastChange = alloc, time.Now()
		} else if time.Since(lastChange) > uploadStall {
			return "", errUploadStalled
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the upload of volume %s: %w", name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func volumeXML(name string, size int64) string {
	return fmt.Sprintf("<volume><name>%s</name><capacity unit='bytes'>%d</capacity><allocation unit='bytes'>0</allocation>"+
		"<target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>", esc(name), size)
}

func volumeName(sum, path string) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, filepath.Base(path))
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	return "yank-" + sum[:24] + "-" + base
}

// fileDigest hashes a file, remembering the result per path, size and
// modification time.
func fileDigest(path string) (string, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	digestMu.Lock()
	sum, ok := digests[key]
	digestMu.Unlock()
	if ok {
		return sum, st.Size(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", 0, err
	}
	sum = hex.EncodeToString(h.Sum(nil))
	digestMu.Lock()
	digests[key] = sum
	digestMu.Unlock()
	return sum, st.Size(), nil
}

var (
	digestMu sync.Mutex
	digests  = map[string]string{}
)

func isLibvirtCode(err error, code golibvirt.ErrorNumber) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && golibvirt.ErrorNumber(le.Code) == code
}
