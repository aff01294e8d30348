package kernels

// Locking: flocks that serialize builders of one key, and the temp dirs they
// guard.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lockFile holds an exclusive flock on path until Unlock. It waits for a
// lock held by another process until ctx ends.
type lockFile struct{ f *os.File }

func lock(ctx context.Context, path string) (*lockFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &lockFile{f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tryLock is lock without waiting; ok is false when someone else holds it.
func tryLock(path string) (*lockFile, bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return &lockFile{f}, true
}

func (l *lockFile) Unlock() {
	if l != nil && l.f != nil {
		syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
	}
}

// Temp dirs are named .tmp-<key>-<random> next to the entries (same
// filesystem, so the final rename is atomic) and guarded by <key>.lock.
const tmpPrefix = ".tmp-"

// cleanStale removes temp dirs left by killed builds: any .tmp-<key>-*
// whose key lock nobody holds. The caller may already hold heldKey's lock.
func cleanStale(dir, heldKey string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, tmpPrefix) {
			continue
		}
		rest := strings.TrimPrefix(name, tmpPrefix)
		i := strings.LastIndexByte(rest, '-')
		if i <= 0 {
			continue
		}
		key := rest[:i]
		if key == heldKey {
			os.RemoveAll(filepath.Join(dir, name))
			continue
		}
		if l, ok := tryLock(filepath.Join(dir, key+".lock")); ok {
			os.RemoveAll(filepath.Join(dir, name))
			l.Unlock()
		}
	}
}

// LockFile is an flock held until Unlock; Lock and TryLock give the
// cache's other stores (snapshot/) the locks kernel builds use.
type LockFile = lockFile

// Lock waits (until ctx ends) for an exclusive flock on path.
func Lock(ctx context.Context, path string) (*LockFile, error) { return lock(ctx, path) }

// TryLock takes the flock on path if no one holds it.
func TryLock(path string) (*LockFile, bool) { return tryLock(path) }
