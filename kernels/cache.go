package kernels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RecipeVersion is part of every cache key. Bump it whenever the way yank
// turns sources into a kernel changes (config steps, make targets, layout),
// so old entries are not reused.
const RecipeVersion = "yank-kernels-1"

// CacheRoot returns yank's cache root: $YANK_CACHE, else
// $XDG_CACHE_HOME/yank, else ~/.cache/yank.
func CacheRoot() (string, error) {
	if d := os.Getenv("YANK_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Abs(filepath.Join(d, "yank"))
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("kernels: no cache dir: set YANK_CACHE (%w)", err)
	}
	return filepath.Join(home, ".cache", "yank"), nil
}

func cacheRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	return CacheRoot()
}

// KeyInputs are everything a built kernel depends on.
type KeyInputs struct {
	Source   string  // source identity (see SourceIdentity)
	Patches  []Patch // full series, base patches first
	Fragment []byte
	Compiler string // first line of `gcc --version`
	Recipe   string // RecipeVersion
}

// Key hashes the inputs into a cache key. Patch names are included as well
// as contents so a reordered series gets a new key.
func Key(in KeyInputs) string {
	h := sha256.New()
	fmt.Fprintf(h, "recipe %q\nsource %q\ncompiler %q\n", in.Recipe, in.Source, in.Compiler)
	fs := sha256.Sum256(in.Fragment)
	fmt.Fprintf(h, "fragment %x\n", fs)
	for _, p := range in.Patches {
		fmt.Fprintf(h, "patch %q %s\n", p.Name, p.SHA256())
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// Meta is written to <entry>/meta.json.
type Meta struct {
	Variant        string            `json:"variant"`
	Key            string            `json:"key"`
	Source         string            `json:"source"`
	Patches        []MetaPatch       `json:"patches"`
	Compiler       string            `json:"compiler"`
	Recipe         string            `json:"recipe"`
	Release        string            `json:"release"`
	ConfigSHA256   string            `json:"config_sha256"`
	BuiltFrom      string            `json:"built_from,omitempty"` // base key for incremental builds
	Incremental    bool              `json:"incremental"`
	MakeLines      int               `json:"make_lines"` // progress lines seen, the next build's estimate
	DisconnectHook bool              `json:"disconnect_hook"`
	Timings        map[string]string `json:"timings"` // stage -> duration
	TotalSeconds   float64           `json:"total_seconds"`
	Jobs           int               `json:"jobs"`
	Created        time.Time         `json:"created"`
}

// MetaPatch records one applied patch.
type MetaPatch struct {
	Variant string `json:"variant"`
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
}

func readMeta(entry string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(entry, "meta.json"))
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

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

func mkdirPrivate(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	return os.Chmod(path, 0o700)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
