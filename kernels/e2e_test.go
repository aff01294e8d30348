package kernels

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
)

// tLogWriter turns Build's progress lines into t.Log lines.
type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestE2EStockAndRFC builds (or finds in the cache) the stock and rfc-v3
// kernels from Debian's linux-source-6.1 and checks that only rfc-v3
// contains the RFC's hook. With a warm cache (CI on this machine) it takes
// about a second; a cold build needs ~15 min per kernel, so run it then
// with `go test -timeout 60m`. It skips only when the source tarball is
// not installed.
func TestE2EStockAndRFC(t *testing.T) {
	e2e.Require(t)
	m, err := stockSource()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.Tarball); err != nil {
		t.Fatalf("no kernel source (apt-get install %s, or make deps): %v", m.AptPackage, err)
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	progress := tLogWriter{t}
	want := map[string]bool{"stock": false, "rfc-v3": true}
	var keys []string
	for _, v := range []string{"stock", "rfc-v3"} {
		start := time.Now()
		a, err := Build(ctx, BuildOptions{Variant: v, Progress: progress})
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: %v (a cold build takes ~15 min: raise go test -timeout)", v, err)
			}
			t.Fatalf("%s: %v", v, err)
		}
		t.Logf("%s: %s (release %s, cached=%v, %s this run; recorded build stages %v)", v, a.BzImage, a.Release, a.Cached, time.Since(start).Round(time.Millisecond), a.Timings)
		for _, f := range []string{a.BzImage, a.Vmlinux, a.Config, a.BuildLog} {
			if st, err := os.Stat(f); err != nil || st.Size() == 0 {
				t.Errorf("%s: artifact %s missing or empty: %v", v, f, err)
			}
		}
		if !strings.HasPrefix(a.Release, "6.1.") || a.ModulesDir != "" || a.Variant != v {
			t.Errorf("%s: unexpected artifact %+v", v, a)
		}
		cfg, _ := os.ReadFile(a.Config)
		if err := verifyConfig(cfg, Fragment()); err != nil {
			t.Errorf("%s: %v", v, err)
		}
		hook, err := HasDisconnectHook(a.Vmlinux)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if hook != want[v] || a.DisconnectHook != want[v] {
			t.Errorf("%s: disconnect hook in vmlinux = %v (meta %v), want %v", v, hook, a.DisconnectHook, want[v])
		}
		// A second call is a cache hit and must be quick.
		start = time.Now()
		b, ok, err := Lookup(ctx, BuildOptions{Variant: v})
		if err != nil || !ok || b.BzImage != a.BzImage {
			t.Errorf("%s: Lookup after Build = %v, %v, %v", v, b.BzImage, ok, err)
		}
		t.Logf("%s: cached lookup %s", v, time.Since(start).Round(time.Millisecond))
		keys = append(keys, a.Key)
	}
	if keys[0] == keys[1] {
		t.Error("stock and rfc-v3 share a cache key")
	}
}

// BenchmarkKernelBuild times each kind of build (run by `make bench`):
//
//   - cached: Build on a cache hit (hash inputs, read meta.json);
//   - incremental: rfc-v3 from a cached stock tree, ccache bypassed
//     (the work make really does: the files that include linux/pci.h);
//   - incremental-ccache: the same with the shared ccache (the usual case);
//   - cold: stock from the tarball without ccache, only with
//     YANK_BENCH_COLD=1 (minutes per iteration); otherwise the cold time
//     recorded in the cached stock entry's meta.json is logged.
//
// The incremental runs work on a clone of the stock entry in a temp cache
// root next to the real one, so the real cache is never modified.
func BenchmarkKernelBuild(b *testing.B) {
	e2e.Require(b)
	ctx := context.Background()
	stock, ok, err := Lookup(ctx, BuildOptions{Variant: "stock"})
	if err != nil || !ok {
		b.Skip("stock not built (yank kernel build stock)")
	}
	root, err := CacheRoot()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := Build(ctx, BuildOptions{Variant: "stock"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	incremental := func(b *testing.B, noCcache bool) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tmp := cloneCacheWith(b, root, stock)
			b.StartTimer()
			a, err := Build(ctx, BuildOptions{Variant: "rfc-v3", CacheDir: tmp, NoCcache: noCcache})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if a.BuiltFrom != stock.Key || !a.DisconnectHook {
				b.Fatalf("not an incremental rfc-v3 build: %+v", a)
			}
			os.RemoveAll(tmp)
			b.StartTimer()
		}
	}
	b.Run("incremental", func(b *testing.B) { incremental(b, true) })
	b.Run("incremental-ccache", func(b *testing.B) { incremental(b, false) })
	b.Run("cold", func(b *testing.B) {
		if os.Getenv("YANK_BENCH_COLD") == "" {
			b.Skipf("set YANK_BENCH_COLD=1 to time cold builds; recorded cold build of stock: %v", stock.Timings)
		}
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			tmp, err := os.MkdirTemp(root, "bench-")
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := Build(ctx, BuildOptions{Variant: "stock", CacheDir: tmp, NoCcache: true}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.RemoveAll(tmp)
			b.StartTimer()
		}
	})
}

// cloneCacheWith makes a temp cache root holding a copy of entry (sources
// hard-linked, objects copied, as an incremental build does) and sharing
// the real ccache.
func cloneCacheWith(b *testing.B, root string, entry Artifact) string {
	tmp, err := os.MkdirTemp(root, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(tmp, "kernels", entry.Key)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, f := range []string{"bzImage", "vmlinux", ".config", "build.log", "meta.json"} {
		if err := copyFile(filepath.Join(entry.Dir, f), filepath.Join(dst, f)); err != nil {
			b.Fatal(err)
		}
	}
	if err := run(ctx, "", nil, io.Discard, "cp", "-al", filepath.Join(entry.Dir, "src"), filepath.Join(dst, "src")); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dst, "src", "yank-out"))
	if err := run(ctx, "", nil, io.Discard, "cp", "-a", filepath.Join(entry.Dir, "src", "yank-out"), filepath.Join(dst, "src", "yank-out")); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "ccache"), filepath.Join(tmp, "ccache")); err != nil {
		b.Fatal(err)
	}
	m, _ := stockSource()
	if _, err := tarballIdentity(tmp, m.Tarball); err != nil {
		b.Fatal(err)
	}
	return tmp
}

func stockSource() (Source, error) {
	v, err := FindVariant("stock")
	if err != nil {
		return Source{}, err
	}
	return SourceFor(v)
}
