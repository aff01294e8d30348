package kernels

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeyStableAndSensitive(t *testing.T) {
	base := KeyInputs{
		Source:   "tarball linux-source-6.1.tar.xz sha256:abc",
		Patches:  []Patch{{Variant: "v", Name: "0001-a.patch", Data: []byte("a")}, {Variant: "v", Name: "0002-b.patch", Data: []byte("b")}},
		Fragment: []byte("CONFIG_PCI=y\n"),
		Compiler: "gcc (Debian 12.2.0-14) 12.2.0",
		Recipe:   RecipeVersion,
	}
	k := Key(base)
	if k != Key(base) || len(k) != 24 {
		t.Fatalf("unstable or malformed key %q", k)
	}
	// The variant that owns a patch is not part of the key: identical
	// inputs are the same kernel.
	same := base
	same.Patches = []Patch{{Variant: "other", Name: "0001-a.patch", Data: []byte("a")}, {Variant: "other", Name: "0002-b.patch", Data: []byte("b")}}
	if Key(same) != k {
		t.Error("key depends on the variant name")
	}
	changes := map[string]func(*KeyInputs){
		"source":        func(in *KeyInputs) { in.Source += "x" },
		"patch content": func(in *KeyInputs) { in.Patches = []Patch{in.Patches[0], {Name: "0002-b.patch", Data: []byte("B")}} },
		"patch order":   func(in *KeyInputs) { in.Patches = []Patch{in.Patches[1], in.Patches[0]} },
		"patch added": func(in *KeyInputs) {
			in.Patches = append(append([]Patch{}, in.Patches...), Patch{Name: "0003", Data: nil})
		},
		"no patches": func(in *KeyInputs) { in.Patches = nil },
		"fragment":   func(in *KeyInputs) { in.Fragment = []byte("CONFIG_PCI=n\n") },
		"compiler":   func(in *KeyInputs) { in.Compiler = "gcc 13" },
		"recipe":     func(in *KeyInputs) { in.Recipe = "yank-kernels-0" },
	}
	seen := map[string]string{k: "base"}
	for name, change := range changes {
		in := base
		change(&in)
		got := Key(in)
		if prev, dup := seen[got]; dup {
			t.Errorf("changing %s gives the same key as %s", name, prev)
		}
		seen[got] = name
	}
}

func TestCacheRootPrecedence(t *testing.T) {
	t.Setenv("YANK_CACHE", "/tmp/yc")
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	if r, _ := CacheRoot(); r != "/tmp/yc" {
		t.Errorf("YANK_CACHE ignored: %s", r)
	}
	t.Setenv("YANK_CACHE", "")
	if r, _ := CacheRoot(); r != "/tmp/xdg/yank" {
		t.Errorf("XDG_CACHE_HOME ignored: %s", r)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/tmp/home")
	if r, _ := CacheRoot(); r != "/tmp/home/.cache/yank" {
		t.Errorf("HOME fallback: %s", r)
	}
}

func TestCleanStaleRespectsLocks(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{".tmp-aaaa-1", ".tmp-bbbb-2", ".tmp-cccc-3", "aaaa"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	busy, ok := tryLock(filepath.Join(dir, "bbbb.lock")) // a live build of bbbb
	if !ok {
		t.Fatal("lock")
	}
	defer busy.Unlock()
	cleanStale(dir, "cccc")
	for d, want := range map[string]bool{".tmp-aaaa-1": false, ".tmp-bbbb-2": true, ".tmp-cccc-3": false, "aaaa": true} {
		if exists(filepath.Join(dir, d)) != want {
			t.Errorf("%s exists = %v, want %v", d, !want, want)
		}
	}
	if _, ok := tryLock(filepath.Join(dir, "bbbb.lock")); ok {
		t.Error("second lock on a held lock succeeded")
	}
}

func TestErrorExcerpt(t *testing.T) {
	log := "  CC a.o\n  CC b.o\nb.c: In function 'f':\nb.c:3:1: error: expected ';'\n    3 | x\n  CC c.o\nmake[2]: *** [b.o] Error 1\n"
	got := ErrorExcerpt(log, 3, 1)
	want := "b.c: In function 'f':\nb.c:3:1: error: expected ';'\n    3 | x"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := ErrorExcerpt("ok\nmake: *** [Makefile:1] Error 2\n", 3, 0); got != "make: *** [Makefile:1] Error 2" {
		t.Errorf("make-only error: %q", got)
	}
}
