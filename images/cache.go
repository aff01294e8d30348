package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CacheRoot is yank's cache directory, outside any checkout: $YANK_CACHE,
// else $XDG_CACHE_HOME/yank, else ~/.cache/yank.
func CacheRoot() (string, error) {
	if d := os.Getenv("YANK_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "yank"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("images: no cache dir: set YANK_CACHE (%w)", err)
	}
	return filepath.Join(home, ".cache", "yank"), nil
}

// CacheEntry is one cached image.
type CacheEntry struct {
	Image
	ModTime time.Time
}

// List returns the images in the cache under root ("" = CacheRoot()),
// newest first. A missing cache is empty, not an error.
func List(root string) ([]CacheEntry, error) {
	if root == "" {
		var err error
		if root, err = CacheRoot(); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(root, "images")
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []CacheEntry
	for _, de := range des {
		name := de.Name()
		k, ok := strings.CutSuffix(name, ".cpio.gz")
		if !ok || strings.HasPrefix(name, ".") || !de.Type().IsRegular() {
			continue // temp files of builds in progress, strays
		}
		info, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, CacheEntry{
			Image:   Image{Path: filepath.Join(dir, name), Key: k, Size: info.Size()},
			ModTime: info.ModTime(),
		})
	}
	slices.SortFunc(out, func(a, b CacheEntry) int { return b.ModTime.Compare(a.ModTime) }) // newest first
	return out, nil
}
