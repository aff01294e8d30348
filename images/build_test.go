package images

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
)

// hostDebian is Debian's packaged kernel (linux-image-amd64, which make
// deps installs): whichever release apt installed, never a fixed one, so
// the e2e tests run after every kernel update instead of skipping.
func hostDebian(t *testing.T) kernels.Artifact {
	t.Helper()
	a, err := kernels.Debian()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var hostModuleNames = []string{"virtio_pci", "virtio_blk", "virtio_console"}

// archived is one entry read back from an image.
type archived struct {
	mode cpio.FileMode
	data []byte
	link string
}

// readImage gunzips and unpacks path, returning entries by name and the
// names in archive order.
func readImage(t *testing.T, path string) (map[string]archived, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	got := map[string]archived{}
	var order []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[h.Name]; dup {
			t.Errorf("duplicate entry %s", h.Name)
		}
		got[h.Name] = archived{mode: h.Mode, data: data, link: h.Linkname}
		order = append(order, h.Name)
	}
	return got, order
}

// needHost fails (make deps installs all of these; an e2e test that
// skips on a missing package would hide a broken CI).
func needHost(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("host lacks %s (run make deps): %v", p, err)
		}
	}
}

func hostOpts(t *testing.T) Options {
	modules := hostDebian(t).ModulesDir
	needHost(t, "/bin/busybox", "/usr/sbin/qemu-ga", modules+"/modules.dep")
	return Options{CacheDir: t.TempDir(), ModulesDir: modules, Modules: hostModuleNames}
}

func TestBuildContents(t *testing.T) {
	e2e.Require(t)
	opts := hostOpts(t)
	start := time.Now()
	img, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold build: %v, %d bytes, %s", time.Since(start), img.Size, img.Path)
	if want := filepath.Join(opts.CacheDir, "images", img.Key+".cpio.gz"); img.Path != want {
		t.Errorf("path %s, want %s", img.Path, want)
	}
	got, order := readImage(t, img.Path)

	isExec := func(name string) {
		t.Helper()
		e, ok := got[name]
		switch {
		case !ok:
			t.Errorf("missing %s", name)
		case e.mode&cpio.ModeType != cpio.TypeReg || e.mode&0o111 == 0:
			t.Errorf("%s: mode %o, want an executable regular file", name, e.mode)
		}
	}
	isExec("init")
	isExec("bin/busybox")
	isExec("usr/sbin/qemu-ga")
	isExec("lib64/ld-linux-x86-64.so.2")
	if !bytes.Equal(got["init"].data, initScript) {
		t.Error("init differs from init.sh")
	}
	for _, applet := range []string{"bin/sh", "sbin/insmod", "bin/mount", "usr/bin/setsid"} {
		if e := got[applet]; e.mode&cpio.ModeType != cpio.TypeSymlink || e.link != "/bin/busybox" {
			t.Errorf("%s: mode %o link %q, want symlink to /bin/busybox", applet, e.mode, e.link)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var/run", "etc"} {
		if got[d].mode&cpio.ModeType != cpio.TypeDir {
			t.Errorf("missing dir %s", d)
		}
	}

	// Every DT_NEEDED library of qemu-ga, and theirs, is in the guest's
	// library dir and is the host's file.
	var check func(name string, depth int)
	check = func(name string, depth int) {
		e, ok := got[name]
		if !ok {
			t.Errorf("missing %s", name)
			return
		}
		f, err := elf.NewFile(bytes.NewReader(e.data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		libs, _ := f.ImportedLibraries()
		for _, l := range libs {
			if depth == 0 {
				t.Logf("qemu-ga needs %s", l)
			}
			check("lib/x86_64-linux-gnu/"+l, depth+1)
		}
	}
	check("usr/sbin/qemu-ga", 0)
	if _, ok := got["lib/x86_64-linux-gnu/libpcre2-8.so.0"]; !ok {
		t.Error("indirect dependency libpcre2-8.so.0 (of glib) missing")
	}

	// Parents come before children: the kernel does not create them.
	seen := map[string]bool{}
	for _, n := range order {
		if strings.HasPrefix(n, "/") {
			t.Errorf("absolute name %s", n)
		}
		if d := filepath.Dir(n); d != "." && !seen[d] {
			t.Errorf("%s comes before its directory", n)
		}
		seen[n] = true
	}

	// Modules: every listed file is present, dependencies load first.
	list := strings.Fields(string(got["etc/yank/modules"].data))
	if len(list) == 0 {
		t.Fatal("empty module list")
	}
	db, err := loadModuleDB(opts.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, p := range list {
		if _, ok := got[strings.TrimPrefix(p, "/")]; !ok {
			t.Errorf("module %s listed but not in the image", p)
		}
		pos[moduleName(p)] = i
	}
	for _, m := range hostModuleNames {
		if _, ok := pos[m]; !ok {
			t.Errorf("module %s not in the list", m)
		}
	}
	for m, i := range pos {
		for _, d := range db.deps[m] {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("%s loads before its dependency %s (list %v)", m, d, list)
			}
		}
	}
	t.Logf("module order: %v", list)
}

func TestBuildDeterministicAndCached(t *testing.T) {
	e2e.Require(t)
	opts := hostOpts(t)
	a, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	opts2 := opts
	opts2.CacheDir = t.TempDir()
	b, err := Build(context.Background(), opts2)
	if err != nil {
		t.Fatal(err)
	}
	if a.Key != b.Key {
		t.Fatalf("keys differ: %s vs %s", a.Key, b.Key)
	}
	ab, _ := os.ReadFile(a.Path)
	bb, _ := os.ReadFile(b.Path)
	if !bytes.Equal(ab, bb) {
		t.Fatal("same inputs gave different bytes")
	}

	// A cache hit returns the file as is: mark it to prove no rebuild.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(a.Path, old, old); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cache hit (inputs re-read and hashed): %v", time.Since(start))
	if c != a {
		t.Errorf("cache hit returned %+v, want %+v", c, a)
	}
	if st, _ := os.Stat(a.Path); !st.ModTime().Equal(old) {
		t.Error("cache hit rewrote the image")
	}
	if ents, _ := os.ReadDir(filepath.Dir(a.Path)); len(ents) != 1 {
		t.Errorf("cache dir holds %d files, want 1 (temp files left?)", len(ents))
	}

	// Different inputs, different key.
	opts.Modules = []string{"virtio_blk"}
	d, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if d.Key == a.Key {
		t.Error("different modules gave the same key")
	}
	l, err := List(opts.CacheDir)
	if err != nil || len(l) != 2 || l[0].Key != d.Key {
		t.Errorf("List = %+v, %v; want 2 entries, newest %s", l, err, d.Key)
	}
}

func TestBuildWithoutModules(t *testing.T) {
	e2e.Require(t)
	needHost(t, "/bin/busybox", "/usr/sbin/qemu-ga")
	img, err := Build(context.Background(), Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readImage(t, img.Path)
	if _, ok := got["etc/yank/modules"]; ok {
		t.Error("module list present without modules")
	}
}

func TestBuildExtraBinary(t *testing.T) {
	e2e.Require(t)
	needHost(t, "/bin/busybox", "/usr/sbin/qemu-ga", "/usr/bin/gzip")
	img, err := Build(context.Background(), Options{CacheDir: t.TempDir(), ExtraBinaries: []string{"/usr/bin/gzip"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readImage(t, img.Path)
	// The real gzip replaces busybox's gzip applet link.
	if e := got["usr/bin/gzip"]; e.mode&cpio.ModeType != cpio.TypeReg {
		t.Errorf("usr/bin/gzip: mode %o, want the host binary", e.mode)
	}
}

func TestBuildErrors(t *testing.T) {
	e2e.Require(t)
	needHost(t, "/bin/busybox", "/usr/sbin/qemu-ga")
	dir := t.TempDir()

	// A copy of qemu-ga whose DT_NEEDED names a library that does not exist
	// (same length, so the ELF stays valid).
	ga, err := os.ReadFile("/usr/sbin/qemu-ga")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "needs-missing-lib")
	if err := os.WriteFile(bad, bytes.Replace(ga, []byte("libnuma.so.1\x00"), []byte("libnoma.so.1\x00"), 1), 0o755); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		opts Options
		want []string
	}{
		{"no busybox", Options{Busybox: "/nonexistent/busybox"},
			[]string{"/nonexistent/busybox", "apt-get install busybox-static"}},
		{"no agent", Options{Agent: "/nonexistent/qemu-ga"},
			[]string{"/nonexistent/qemu-ga", "apt-get install qemu-guest-agent"}},
		{"missing library", Options{ExtraBinaries: []string{bad}},
			[]string{bad, "libnoma.so.1", "/lib/x86_64-linux-gnu"}},
		{"modules without dir", Options{Modules: []string{"virtio_blk"}},
			[]string{"ModulesDir"}},
		{"bad modules dir", Options{ModulesDir: dir, Modules: []string{"virtio_blk"}},
			[]string{dir, "modules.dep"}},
	}
	if !testing.Short() {
		hostModules := hostDebian(t).ModulesDir
		cases = append(cases, struct {
			name string
			opts Options
			want []string
		}{"unknown module", Options{ModulesDir: hostModules, Modules: []string{"virtio_nope"}},
			[]string{`"virtio_nope"`, hostModules, "find " + hostModules}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.CacheDir = t.TempDir()
			_, err := Build(context.Background(), c.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			t.Log(err)
		})
	}
}

func TestBuildCanceled(t *testing.T) {
	e2e.Require(t)
	needHost(t, "/bin/busybox", "/usr/sbin/qemu-ga")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, Options{CacheDir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestCacheRoot(t *testing.T) {
	t.Setenv("YANK_CACHE", "/y")
	t.Setenv("XDG_CACHE_HOME", "/x")
	t.Setenv("HOME", "/h")
	for _, c := range []struct{ unset, want string }{
		{"", "/y"}, {"YANK_CACHE", "/x/yank"}, {"XDG_CACHE_HOME", "/h/.cache/yank"},
	} {
		if c.unset != "" {
			t.Setenv(c.unset, "")
		}
		if got, err := CacheRoot(); err != nil || got != c.want {
			t.Errorf("CacheRoot() = %q, %v; want %q", got, err, c.want)
		}
	}
}
