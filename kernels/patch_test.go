package kernels

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTree writes a tiny source tree standing in for the kernel.
func fakeTree(t testing.TB, dir string) {
	t.Helper()
	files := map[string]string{
		"drivers/pci/pci.h":   "static inline int pci_dev_set_disconnected(void)\n{\n\tset_state();\n\n\treturn 0;\n}\n",
		"include/linux/pci.h": "struct pci_dev {\n\tint a;\n\tint b;\n};\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const goodPatch = `From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Test <test@example.com>
Subject: [PATCH] add hook

---
 drivers/pci/pci.h | 2 ++
 1 file changed, 2 insertions(+)

diff --git a/drivers/pci/pci.h b/drivers/pci/pci.h
--- a/drivers/pci/pci.h
+++ b/drivers/pci/pci.h
@@ -2,5 +2,7 @@ static inline int pci_dev_set_disconnected(void)
 {
 	set_state();
 
+	hook();
+
 	return 0;
 }
`

const secondPatch = `diff --git a/include/linux/pci.h b/include/linux/pci.h
--- a/include/linux/pci.h
+++ b/include/linux/pci.h
@@ -1,4 +1,5 @@
 struct pci_dev {
 	int a;
 	int b;
+	int disconnect_work;
 };
`

// brokenPatch's second hunk has context that is not in the tree.
const brokenPatch = `diff --git a/include/linux/pci.h b/include/linux/pci.h
--- a/include/linux/pci.h
+++ b/include/linux/pci.h
@@ -1,2 +1,3 @@
 struct pci_dev {
+	int first;
 	int a;
@@ -3,2 +4,3 @@ struct pci_dev {
 	int b;
+	int x;
 #ifdef CONFIG_PCIE_TPH
`

func TestApplySeriesGood(t *testing.T) {
	dir := t.TempDir()
	fakeTree(t, dir)
	series := []Patch{
		{Variant: "v", Name: "0001-add-hook.patch", Data: []byte(goodPatch)},
		{Variant: "v", Name: "0002-member.patch", Data: []byte(secondPatch)},
	}
	if err := ApplySeries(context.Background(), dir, series, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "drivers/pci/pci.h"))
	if !strings.Contains(string(b), "hook();") {
		t.Errorf("patch 1 not applied:\n%s", b)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "include/linux/pci.h"))
	if !strings.Contains(string(b), "disconnect_work") {
		t.Errorf("patch 2 not applied:\n%s", b)
	}
}

func TestApplySeriesBrokenNamesPatchAndHunk(t *testing.T) {
	dir := t.TempDir()
	fakeTree(t, dir)
	series := []Patch{
		{Variant: "v", Name: "0001-add-hook.patch", Data: []byte(goodPatch)},
		{Variant: "v", Name: "0002-broken.patch", Data: []byte(brokenPatch)},
	}
	err := ApplySeries(context.Background(), dir, series, nil)
	var pe *PatchError
	if !errors.As(err, &pe) {
		t.Fatalf("want *PatchError, got %v", err)
	}
	t.Logf("error as users see it:\n%v", err)
	if pe.Patch != "v/0002-broken.patch" || pe.File != "include/linux/pci.h" || pe.Hunk != "@@ -3,2 +4,3 @@ struct pci_dev {" {
		t.Errorf("error does not pinpoint the hunk: %+v", pe)
	}
	for _, want := range []string{"0002-broken.patch", "include/linux/pci.h", "@@ -3,2 +4,3 @@"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q:\n%s", want, err)
		}
	}
	// git apply is atomic per patch: the broken patch's first hunk must
	// not have been applied.
	b, _ := os.ReadFile(filepath.Join(dir, "include/linux/pci.h"))
	if strings.Contains(string(b), "first") {
		t.Errorf("partial application:\n%s", b)
	}
}

func TestApplySeriesMissingFile(t *testing.T) {
	dir := t.TempDir()
	fakeTree(t, dir)
	p := strings.ReplaceAll(secondPatch, "include/linux/pci.h", "include/linux/nope.h")
	err := ApplySeries(context.Background(), dir, []Patch{{Variant: "v", Name: "0001-x.patch", Data: []byte(p)}}, nil)
	var pe *PatchError
	if !errors.As(err, &pe) || pe.File != "include/linux/nope.h" {
		t.Fatalf("want PatchError naming include/linux/nope.h, got %v", err)
	}
}

// A tree hard-linked from a pristine copy must not change the pristine one.
func TestApplySeriesUnsharesHardLinks(t *testing.T) {
	pristine, work := t.TempDir(), filepath.Join(t.TempDir(), "w")
	fakeTree(t, pristine)
	linkTree(t, pristine, work)
	if err := ApplySeries(context.Background(), work, []Patch{{Variant: "v", Name: "0001.patch", Data: []byte(goodPatch)}}, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(pristine, "drivers/pci/pci.h"))
	if strings.Contains(string(b), "hook") {
		t.Fatal("pristine tree modified through a hard link")
	}
}

func TestParsePatch(t *testing.T) {
	fps := ParsePatch([]byte(brokenPatch))
	if len(fps) != 1 || fps[0].OldPath != "include/linux/pci.h" || len(fps[0].Hunks) != 2 || fps[0].Hunks[1].OldStart != 3 {
		t.Fatalf("got %+v", fps)
	}
	// Plain unified diff (no diff --git line), two files.
	plain := "--- a/x.c\t2020-01-01\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n--- a/y.c\n+++ b/y.c\n@@ -7,1 +7,1 @@\n-a\n+b\n"
	fps = ParsePatch([]byte(plain))
	if len(fps) != 2 || fps[0].NewPath != "x.c" || fps[1].OldPath != "y.c" || fps[1].Hunks[0].OldStart != 7 {
		t.Fatalf("got %+v", fps)
	}
}

// The real series must apply to a tree shaped like 6.1 at the lines the
// backport touches (checked against the real tarball by the e2e test).
func TestEmbeddedSeriesIsWellFormed(t *testing.T) {
	ps, err := seriesFor("rfc-v3")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("rfc-v3 series: %d patches", len(ps))
	}
	s := string(ps[0].Data)
	for _, want := range []string{
		"From: \"Michael S. Tsirkin\" <mst@redhat.com>",
		"Subject: [PATCH RFC v3] pci: report surprise removal event",
		"Signed-off-by: Michael S. Tsirkin <mst@redhat.com>",
		"pci_doe_disconnected", "CONFIG_PCIE_TPH", // the backport notes
		"+	struct work_struct disconnect_work;",
		"+		schedule_work(&dev->disconnect_work);",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rfc-v3 patch lacks %q", want)
		}
	}
	files := ParsePatch(ps[0].Data)
	if len(files) != 2 || files[0].NewPath != "drivers/pci/pci.h" || files[1].NewPath != "include/linux/pci.h" {
		t.Errorf("files: %+v", files)
	}
}

func FuzzApplySeries(f *testing.F) {
	f.Add([]byte(goodPatch))
	f.Add([]byte(secondPatch))
	f.Add([]byte(brokenPatch))
	f.Add([]byte(goodPatch + secondPatch))
	f.Add([]byte("diff --git a/../../etc/x b/../../etc/x\n--- a/../../etc/x\n+++ b/../../etc/x\n@@ -1 +1 @@\n-a\n+b\n"))
	f.Add([]byte("@@ -99999999999999999999 +1 @@\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParsePatch(data) // must not panic on anything
		dir := t.TempDir()
		fakeTree(t, dir)
		err := ApplySeries(context.Background(), dir, []Patch{{Variant: "fuzz", Name: "0001-fuzz.patch", Data: data}}, nil)
		if err == nil {
			return
		}
		var pe *PatchError
		if !errors.As(err, &pe) {
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if !strings.Contains(err.Error(), "fuzz/0001-fuzz.patch") {
			t.Fatalf("error does not name the patch: %v", err)
		}
	})
}

// linkTree recreates from's directories under to and hard-links its files,
// as cp -al does.
func linkTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		return os.Link(p, filepath.Join(to, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}
