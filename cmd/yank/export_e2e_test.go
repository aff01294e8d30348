package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/scenario"
)

// A kernel built here, exported, imported into a clean cache: `yank run`
// against that cache boots it with no build (the team's shared cold
// start), and a second import says it is already there.
func TestKernelExportImport(t *testing.T) {
	e2e.Require(t)
	ctx := context.Background()
	built, err := kernels.Build(ctx, kernels.BuildOptions{Variant: "stock", Progress: tlogWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "kernels.tar.gz")
	var out, errOut bytes.Buffer
	if err := dispatch(ctx, []string{"kernel", "export", "-o", tarball, "stock"}, &out, &errOut); err != nil {
		t.Fatalf("export: %v\n%s", err, errOut.String())
	}
	t.Log(out.String())

	clean := t.TempDir()
	for i, want := range []string{": imported: ", ": already cached: "} {
		out.Reset()
		if err := dispatch(ctx, []string{"kernel", "import", "-cache", clean, tarball}, &out, &errOut); err != nil {
			t.Fatalf("import %d: %v", i+1, err)
		}
		if !strings.Contains(out.String(), "stock (") || !strings.Contains(out.String(), want) {
			t.Fatalf("import %d said %q, want %q", i+1, out.String(), want)
		}
	}
	t.Setenv("YANK_CACHE", clean)
	got, ok, err := kernels.Lookup(ctx, kernels.BuildOptions{Variant: "stock"})
	if err != nil || !ok {
		t.Fatalf("the clean cache has no stock after the import: %v", err)
	}
	if got.Key != built.Key || !strings.HasPrefix(got.BzImage, clean) {
		t.Fatalf("imported entry %s (%s), want key %s under %s", got.Key, got.BzImage, built.Key, clean)
	}
	// One trial from that cache: the run builds nothing (no Kbuild
	// progress line) and the guest is judged.
	dir := t.TempDir()
	out.Reset()
	errOut.Reset()
	err = runCmd(ctx, []string{"-kernels", "stock", "-scenarios", "surprise-idle", "-no-snapshot", "-artifacts", dir}, &out, &errOut)
	t.Logf("yank run:\n%s\n%s", out.String(), tail(errOut.String(), 2000))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errOut.String(), "build: ") || strings.Contains(errOut.String(), "make -j") {
		t.Errorf("yank run built a kernel although the import gave it one")
	}
	rows, err := engine.ReadMatrix(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Verdict.Outcome == scenario.InfraError {
		t.Fatalf("want one judged trial, got %+v", rows)
	}
	if _, err := os.Stat(filepath.Join(clean, "kernels", built.Key, "bzImage")); err != nil {
		t.Fatal(err)
	}
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
