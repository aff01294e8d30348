package kernels

// The cache's root, its keys and the small file helpers its entries use.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// sha256Hex is the hex SHA-256 of b, the form every hash in the cache takes.
func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
