package kernels

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
)

// TestGC runs GC on a made-up cache: entries current variants resolve to
// stay, so do entries used within Keep; stale, broken and orphaned ones
// go, and a dry run removes nothing.
func TestGC(t *testing.T) {
	e2e.Require(t) // reads the real linux-source tarball
	src, err := stockSource()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src.Tarball); err != nil {
		t.Fatalf("needs %s (apt-get install %s, or make deps)", src.Tarball, src.AptPackage)
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("needs gcc, the compiler is part of the cache key (make deps)")
	}
	root := t.TempDir()
	ctx := context.Background()
	p, err := planBuild(ctx, BuildOptions{Variant: "stock", CacheDir: root})
	if err != nil {
		t.Fatal(err)
	}
	kdir := filepath.Join(root, "kernels")
	month := time.Now().Add(-30 * 24 * time.Hour)
	entry := func(name string, created time.Time) string {
		d := filepath.Join(kdir, name)
		os.MkdirAll(filepath.Join(d, "src"), 0o700)
		os.WriteFile(filepath.Join(d, "bzImage"), make([]byte, 8192), 0o600)
		if !created.IsZero() {
			writeJSON(filepath.Join(d, "meta.json"), Meta{Variant: name, Key: name, Created: created})
		}
		return d
	}
	entry(p.key, month)
	entry("old", month)
	entry("recent", time.Now())
	usedLately := entry("used-lately", month)
	markUsed(usedLately)
	entry("nometa", time.Time{})
	os.MkdirAll(filepath.Join(kdir, tmpPrefix+"dead-123"), 0o700)
	os.WriteFile(filepath.Join(kdir, "orphan.lock"), nil, 0o600)
	os.WriteFile(filepath.Join(kdir, "old.failed.log"), []byte("x"), 0o600)
	os.Chtimes(filepath.Join(kdir, "old.failed.log"), month, month)
	os.MkdirAll(filepath.Join(root, "src", "deadbeefdeadbeef", "linux"), 0o700)
	tree := filepath.Join(root, "trees", "0123456789abcdef")
	os.MkdirAll(filepath.Join(tree, "obj"), 0o700)
	os.WriteFile(filepath.Join(tree, "tree"), []byte("/no/such/tree\n"), 0o600)

	want := []string{
		filepath.Join(kdir, tmpPrefix+"dead-123"),
		filepath.Join(kdir, "nometa"),
		filepath.Join(kdir, "old"),
		filepath.Join(kdir, "old.failed.log"),
		filepath.Join(kdir, "orphan.lock"),
		filepath.Join(root, "src", "deadbeefdeadbeef"),
		tree,
	}
	slices.Sort(want)
	for _, dry := range []bool{true, false} {
		r, err := GC(ctx, GCOptions{CacheDir: root, Keep: 14 * 24 * time.Hour, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range r.Removed {
			got = append(got, it.Path)
			if _, err := os.Stat(it.Path); (err == nil) != dry {
				t.Errorf("dry=%v: %s exists=%v", dry, it.Path, err == nil)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("dry=%v: removed\n%q\nwant\n%q", dry, got, want)
		}
		for _, keep := range []string{p.key, "recent", "used-lately"} {
			if _, err := os.Stat(filepath.Join(kdir, keep, "bzImage")); err != nil {
				t.Errorf("dry=%v: %s removed", dry, keep)
			}
		}
	}
}
