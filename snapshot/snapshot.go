// Package snapshot keeps saved guest states in yank's cache: a guest
// booted, set up and loaded for a trial, saved right before its trigger
// (machine.SaveState), so that every trial of that cell restores the same
// guest in a fresh QEMU (machine.Restore) instead of booting. An entry is
// keyed by everything that shaped the guest (Key); a guest QEMU cannot
// save is recorded as refused, so later trials boot cold at once.
package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/yank-dev/yank/kernels"
)

// Store is the snapshots dir of a cache: <cache>/snapshots/<key>/ holds
// state (the saved guest), meta.json and console.log (the boot that made
// it).
type Store struct{ Dir string }

// Open returns the store in cacheDir ("" = the cache root, $YANK_CACHE or
// ~/.cache/yank).
func Open(cacheDir string) (*Store, error) {
	if cacheDir == "" {
		root, err := kernels.CacheRoot()
		if err != nil {
			return nil, err
		}
		cacheDir = root
	}
	dir := filepath.Join(cacheDir, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	return &Store{Dir: dir}, nil
}

// Meta describes an entry.
type Meta struct {
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
	Kernel  string    `json:"kernel"` // the bzImage it booted (GC drops the entry once it is gone)
	Initrd  string    `json:"initrd"`
	Bytes   int64     `json:"bytes"`
	// Took is boot to saved: what a restore saves each trial.
	Took time.Duration `json:"took_ns"`
	// Facts are what the maker learnt about the guest that a restored
	// trial needs (its disk's name, its PCI address).
	Facts map[string]string `json:"facts,omitempty"`
	// Refused says why QEMU could not save this guest (a device that
	// blocks migration): trials of this key boot cold.
	Refused string `json:"refused,omitempty"`
}

// Entry is one snapshot in the store.
type Entry struct {
	Dir  string
	Meta Meta
}

// State is the saved guest state's path.
func (e Entry) State() string { return filepath.Join(e.Dir, "state") }

// Console is the console log of the boot that made the entry.
func (e Entry) Console() string { return filepath.Join(e.Dir, "console.log") }

// Key digests what shaped a guest (any JSON-encodable values) into an
// entry name.
func Key(parts ...any) (string, error) {
	b, err := json.Marshal(parts)
	if err != nil {
		return "", fmt.Errorf("snapshot key: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12]), nil
}

// A Maker boots, prepares and saves a guest into dir (its state at
// Entry.State's name, its console at Entry.Console's) and returns what
// it learnt; it may return Meta.Refused instead of a state.
type Maker func(ctx context.Context, dir string) (Meta, error)

// Get returns key's entry, calling make when there is none. Callers of
// one key, in this process or another, wait for a single maker (an
// flock). made says this call made it. A maker's error is returned and
// nothing is stored.
func (s *Store) Get(ctx context.Context, key string, make Maker) (e Entry, made bool, err error) {
	dir := filepath.Join(s.Dir, key)
	if e, ok := s.lookup(dir); ok {
		touch(dir)
		return e, false, nil
	}
	l, err := kernels.Lock(ctx, dir+".lock")
	if err != nil {
		return Entry{}, false, err
	}
	defer l.Unlock()
	if e, ok := s.lookup(dir); ok {
		touch(dir)
		return e, false, nil
	}
	tmp, err := os.MkdirTemp(s.Dir, key+".tmp-")
	if err != nil {
		return Entry{}, false, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	m, err := make(ctx, tmp)
	if err != nil {
		return Entry{}, false, err
	}
	m.Key, m.Created = key, time.Now()
	if m.Took == 0 {
		m.Took = time.Since(start)
	}
	if st, err := os.Stat(filepath.Join(tmp, "state")); err == nil {
		m.Bytes = st.Size()
	} else if m.Refused == "" {
		return Entry{}, false, fmt.Errorf("snapshot %s: the maker saved no state", key)
	}
	if err := writeMeta(tmp, m); err != nil {
		return Entry{}, false, err
	}
	os.RemoveAll(dir) // a damaged entry lookup refused
	if err := os.Rename(tmp, dir); err != nil {
		return Entry{}, false, fmt.Errorf("snapshot %s: %w", key, err)
	}
	touch(dir)
	return Entry{Dir: dir, Meta: m}, true, nil
}

// Remove drops key's entry (a state that would not restore), so the next
// trial makes it afresh.
func (s *Store) Remove(key string) error {
	l, err := kernels.Lock(context.Background(), filepath.Join(s.Dir, key)+".lock")
	if err != nil {
		return err
	}
	defer l.Unlock()
	return os.RemoveAll(filepath.Join(s.Dir, key))
}

func (s *Store) lookup(dir string) (Entry, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return Entry{}, false
	}
	var m Meta
	if json.Unmarshal(b, &m) != nil || m.Key != filepath.Base(dir) {
		return Entry{}, false
	}
	e := Entry{Dir: dir, Meta: m}
	if m.Refused == "" {
		if st, err := os.Stat(e.State()); err != nil || st.Size() != m.Bytes {
			return Entry{}, false
		}
	}
	return e, true
}

func writeMeta(dir string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "meta.json"), append(b, '\n'), 0o600)
}

// usedFile's mtime is an entry's last use (GC keeps recently used ones).
const usedFile = "used"

func touch(dir string) {
	p := filepath.Join(dir, usedFile)
	now := time.Now()
	if os.Chtimes(p, now, now) != nil {
		_ = os.WriteFile(p, nil, 0o600)
	}
}

// FileDigest is the SHA-256 of a file's content, remembered per path,
// size and mtime (a kernel is hashed once per process, not per trial).
func FileDigest(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	id := fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	digestMu.Lock()
	d, ok := digests[id]
	digestMu.Unlock()
	if ok {
		return d, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	d = hex.EncodeToString(h.Sum(nil))
	digestMu.Lock()
	digests[id] = d
	digestMu.Unlock()
	return d, nil
}

var (
	digestMu sync.Mutex
	digests  = map[string]string{}
)
