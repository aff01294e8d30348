package libvirt

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
)

// TestLibvirtUpload uploads a file into the daemon's pool through libvirt
// and checks the content, the reuse by a fresh backend, the replacement of
// a cut-short upload, and two concurrent uploaders of the same file.
func TestLibvirtUpload(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	content := make([]byte, 3<<20+17)
	rand.Read(content)
	path := filepath.Join(t.TempDir(), "bzImage")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
	upload := func(b *Backend, p string) (string, *golibvirt.Libvirt, golibvirt.StoragePool) {
		t.Helper()
		l, err := b.connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Disconnect() })
		pool, err := b.ensurePool(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		hostPath, err := b.uploadFile(ctx, l, pool, p, log)
		if err != nil {
			t.Fatal(err)
		}
		return hostPath, l, pool
	}
	count := func(s string) int {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Count(logs.String(), s)
	}

	p1, l, pool := upload(&Backend{URI: d.UnixURI()}, path)
	if !strings.HasPrefix(p1, "/var/lib/libvirt/yank/yank-") {
		t.Fatalf("volume path %s", p1)
	}
	vol, err := l.StorageVolLookupByName(pool, filepath.Base(p1))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := l.StorageVolDownload(vol, &got, 0, uint64(len(content)), 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), content) {
		t.Fatalf("downloaded %d bytes, differ from the %d uploaded", got.Len(), len(content))
	}
	// A fresh backend (another run) reuses the volume.
	if p2, _, _ := upload(&Backend{URI: d.TCPURI()}, path); p2 != p1 || count("uploaded boot file") != 1 || count("already on the libvirt host") != 1 {
		t.Fatalf("second upload: path %s (first %s), logs:\n%s", p2, p1, logs.String())
	}
	// Without its marker the volume is a cut-short upload: replaced.
	marker, err := l.StorageVolLookupByName(pool, filepath.Base(p1)+".done")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StorageVolDelete(marker, 0); err != nil {
		t.Fatal(err)
	}
	if p3, _, _ := upload(&Backend{URI: d.UnixURI()}, path); p3 != p1 || count("uploaded boot file") != 2 {
		t.Fatalf("partial volume not replaced: %s\n%s", p3, logs.String())
	}
	// Two uploaders of a new file at once: one uploads, the other waits.
	path2 := filepath.Join(t.TempDir(), "initrd")
	rand.Read(content)
	os.WriteFile(path2, content, 0o600)
	var wg sync.WaitGroup
	paths := make([]string, 2)
	for i, uri := range []string{d.UnixURI(), d.TCPURI()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &Backend{URI: uri}
			l, err := b.connect(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Disconnect()
			pool, err := b.ensurePool(ctx, l)
			if err != nil {
				t.Error(err)
				return
			}
			if paths[i], err = b.uploadFile(ctx, l, pool, path2, log); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if paths[0] == "" || paths[0] != paths[1] {
		t.Fatalf("concurrent uploads: %v", paths)
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
