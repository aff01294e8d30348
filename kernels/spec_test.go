package kernels

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/yank-dev/yank/kernels/kernelstest"
)

var (
	hookMail = kernelstest.Mail{Subject: "pci: add hook", Diff: strings.SplitN(goodPatch, "\n\n", 2)[1][strings.Index(strings.SplitN(goodPatch, "\n\n", 2)[1], "diff --git"):]}
	workMail = kernelstest.Mail{Subject: "pci: add disconnect_work", Diff: secondPatch}
	// badMail's hunk expects a line the tree does not have.
	badMail = kernelstest.Mail{Subject: "pci: break things", Diff: strings.Replace(secondPatch, " \tint b;\n", " \tint c;\n", 1)}
)

func TestLoadSeriesDirMboxAndFile(t *testing.T) {
	dir := t.TempDir()
	sd := kernelstest.WriteSeriesDir(t, filepath.Join(dir, "outgoing"), hookMail, workMail)
	// A cover letter (no diff) is skipped; other files are ignored.
	os.WriteFile(filepath.Join(sd, "0000-cover-letter.patch"), []byte(kernelstest.FormatPatch(0, 2, kernelstest.Mail{Subject: "cover"})), 0o644)
	os.WriteFile(filepath.Join(sd, "README"), []byte("not a patch"), 0o644)
	mbox := kernelstest.WriteMbox(t, filepath.Join(dir, "series.mbx"), hookMail, workMail)
	plain := filepath.Join(dir, "one.diff")
	os.WriteFile(plain, []byte(secondPatch), 0o644)

	for _, tc := range []struct {
		path         string
		names, subjs []string
	}{
		{sd, []string{"0001-pci--add-hook.patch", "0002-pci--add-disconnect-work.patch"}, []string{"[PATCH 1/2] pci: add hook", "[PATCH 2/2] pci: add disconnect_work"}},
		{mbox, []string{"series.mbx#1", "series.mbx#2"}, []string{"[PATCH 1/2] pci: add hook", "[PATCH 2/2] pci: add disconnect_work"}},
		{plain, []string{"one.diff"}, []string{""}},
	} {
		ps, err := LoadSeries(tc.path, "mine")
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		var names, subjs []string
		for _, p := range ps {
			names, subjs = append(names, p.Name), append(subjs, p.Subject)
		}
		if !slices.Equal(names, tc.names) || !slices.Equal(subjs, tc.subjs) {
			t.Errorf("%s: names %q subjects %q", tc.path, names, subjs)
		}
		tree := t.TempDir()
		fakeTree(t, tree)
		if err := ApplySeries(context.Background(), tree, ps, nil); err != nil {
			t.Errorf("%s does not apply: %v", tc.path, err)
		}
	}
	// The split mails are byte for byte the files format-patch -o writes.
	fromDir, _ := LoadSeries(sd, "x")
	fromMbox, _ := LoadSeries(mbox, "x")
	for i := range fromDir {
		if string(fromDir[i].Data) != string(fromMbox[i].Data) {
			t.Errorf("mail %d differs between dir and mbox", i+1)
		}
	}

	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	notes := filepath.Join(dir, "notes.patch")
	os.WriteFile(notes, []byte("Subject: no diff here\n\njust words\n"), 0o644)
	for path, want := range map[string]string{
		empty:                      "no *.patch or *.diff files",
		notes:                      "no diff in it",
		filepath.Join(dir, "nope"): "no such file",
	} {
		if _, err := LoadSeries(path, "x"); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadSeries(%s) = %v, want an error naming it and %q", path, err, want)
		}
	}
}

func TestSubjectOfFoldedHeader(t *testing.T) {
	m := "From x Mon Sep 17 00:00:00 2001\nFrom: a\nSubject: [PATCH 3/3] virtio_blk: fail outstanding requests when the device is\n disconnected\nDate: now\n\nbody\n"
	if got, want := subjectOf([]byte(m)), "[PATCH 3/3] virtio_blk: fail outstanding requests when the device is disconnected"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
}

func TestBrokenSeriesNamesFileSubjectAndHunk(t *testing.T) {
	tree := t.TempDir()
	fakeTree(t, tree)
	before, _ := os.ReadFile(filepath.Join(tree, "include/linux/pci.h"))
	mbox := kernelstest.WriteMbox(t, filepath.Join(t.TempDir(), "fix.mbox"), hookMail, badMail)
	ps, err := LoadSeries(mbox, "mine")
	if err != nil {
		t.Fatal(err)
	}
	err = CheckSeries(context.Background(), tree, ps)
	var pe *PatchError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PatchError, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{mbox + " (mail 2 of 2)", `"[PATCH 2/2] pci: break things"`, "include/linux/pci.h", "hunk @@ -1,4 +1,5 @@"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	after, _ := os.ReadFile(filepath.Join(tree, "include/linux/pci.h"))
	if string(before) != string(after) {
		t.Error("CheckSeries changed the tree")
	}
	if err := CheckSeries(context.Background(), tree, ps[:1]); err != nil {
		t.Errorf("good patch: %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	dir := t.TempDir()
	sd := kernelstest.WriteSeriesDir(t, filepath.Join(dir, "my-fix"), hookMail)
	mbox := kernelstest.WriteMbox(t, filepath.Join(dir, "more.mbx"), workMail)
	bz := kernelstest.FakeBzImage(t, dir, "6.12.117 (yank@yank) #1")
	tree := filepath.Join(dir, "linux")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "Makefile"), []byte("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 3\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "Kconfig"), nil, 0o644)

	for _, tc := range []struct {
		in, name, kind, variant, version string
		patches                          int
	}{
		{"stock", "stock", "variant", "stock", "6.1", 0},
		{"rfc-v3-virtio-6.12", "rfc-v3-virtio-6.12", "variant", "rfc-v3-virtio-6.12", "6.12", 0},
		{"stock+" + sd, "stock+my-fix", "series", "stock", "6.1", 1},
		{"rfc-v3+" + sd + "+" + mbox, "rfc-v3+my-fix+more", "series", "rfc-v3", "6.1", 2},
		{"mine=stock-6.12+" + mbox, "mine", "series", "stock-6.12", "6.12", 1},
		{"mine=" + bz, "mine", "bzImage", "", "6.12", 0},
		{bz, strings.ReplaceAll(strings.TrimPrefix(bz, "/"), "/", "_"), "bzImage", "", "6.12", 0},
		{"t=" + tree, "t", "tree", "", "6.12", 0},
	} {
		s, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if s.Name != tc.name || s.Kind() != tc.kind || s.Variant != tc.variant || s.Version() != tc.version || len(s.Patches()) != tc.patches {
			t.Errorf("%s: got name %q kind %s variant %q version %q patches %d", tc.in, s.Name, s.Kind(), s.Variant, s.Version(), len(s.Patches()))
		}
		for _, p := range s.Patches() {
			if p.Variant != tc.name {
				t.Errorf("%s: patch %s owned by %q", tc.in, p.Name, p.Variant)
			}
		}
	}

	notBz := filepath.Join(dir, "fix.patch")
	os.WriteFile(notBz, []byte(secondPatch), 0o644)
	for in, want := range map[string]string{
		"nope":                   "unknown variant \"nope\" (known: stock, rfc-v3",
		"nope+" + sd:             "unknown variant \"nope\" (known: stock",
		"debian+" + sd:           "debian is prebuilt",
		"stock+" + dir + "/gone": "no such file",
		"stock+":                 "empty series",
		sd:                       "not a kernel tree",
		notBz:                    "not a bzImage",
		"/no/such/bzImage":       "no such file or directory",
		"a b=stock":              "plain word",
		"=stock":                 "plain word",
		"x=":                     "empty",
		dir + "/gone+" + mbox:    "must be a variant",
	} {
		if _, err := ParseSpec(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want an error with %q", in, err, want)
		}
	}
	if _, err := ParseSpecs("stock,stock"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate names: %v", err)
	}
}

func TestVariantsFile(t *testing.T) {
	t.Cleanup(func() { UseVariantsFile("") })
	dir := t.TempDir()
	kernelstest.WriteSeriesDir(t, filepath.Join(dir, "patches", "team-fix"), hookMail)
	mbox := kernelstest.WriteMbox(t, filepath.Join(dir, "extra.mbx"), workMail)
	file := filepath.Join(dir, "yank-variants.json")
	os.WriteFile(file, []byte(`{"variants": [
		{"name": "team-fix", "base": "rfc-v3", "description": "our fix, from patches/team-fix/"},
		{"name": "team-fix-612", "base": "rfc-v3-6.12", "series": ["extra.mbx"]}
	]}`), 0o644)
	used, err := UseVariantsFile(file)
	if err != nil || used != file {
		t.Fatalf("UseVariantsFile: %q, %v", used, err)
	}
	v, err := FindVariant("team-fix")
	if err != nil || v.File != file || len(v.Patches) != 1 || v.Version() != "6.1" {
		t.Fatalf("team-fix: %+v, %v", v, err)
	}
	ps, err := seriesFor("team-fix-612")
	if err != nil || len(ps) != 2 || ps[1].Source != mbox || ps[0].Variant != "rfc-v3-6.12" {
		t.Errorf("team-fix-612 series: %d patches, %v", len(ps), err)
	}
	if s, err := ParseSpec("team-fix-612"); err != nil || s.Version() != "6.12" {
		t.Errorf("spec team-fix-612: %+v %v", s, err)
	}

	for body, want := range map[string]string{
		`{"variants": [{"name": "x", "base": "nope"}]}`:                            `variant "x": base: kernels: unknown variant "nope" (known: stock`,
		`{"variants": [{"name": "stock", "base": "rfc-v3"}]}`:                      `variant "stock" is already defined`,
		`{"variants": [{"name": "x"}]}`:                                            `variant "x": name a "base" variant or a "source" (known sources: 6.1, 6.12)`,
		`{"variants": [{"name": "x", "source": "5.10"}]}`:                          `unknown source "5.10"`,
		`{"variants": [{"name": "x", "base": "stock", "series": ["gone.patch"]}]}`: `variant "x": series: series ` + filepath.Join(dir, "gone.patch"),
		`{"variants": [{"name": "x", "base": "stock", "patches": ["a"]}]}`:         `unknown field "patches"`,
		`{"variants": [{"name": "a+b", "base": "stock"}]}`:                         `want a plain word`,
		`{"variants": [`: `unexpected EOF`,
	} {
		os.WriteFile(file, []byte(body), 0o644)
		if _, err := UseVariantsFile(file); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
			t.Errorf("variants file %s: got %v, want an error naming the file and %q", body, err, want)
		}
	}
	// The default file in the working directory.
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	os.Chdir(t.TempDir())
	if used, err := UseVariantsFile(""); used != "" || err != nil {
		t.Errorf("no default file: %q %v", used, err)
	}
	os.WriteFile(DefaultVariantsFile, []byte(`{"variants": [{"name": "alias", "base": "stock"}]}`), 0o644)
	if used, err := UseVariantsFile(""); err != nil || filepath.Base(used) != DefaultVariantsFile {
		t.Errorf("default file: %q %v", used, err)
	}
	if _, err := FindVariant("alias"); err != nil {
		t.Error(err)
	}
}

func TestShortVersion(t *testing.T) {
	for in, want := range map[string]string{"6.12.117": "6.12", "6.1.0-28-amd64": "6.1", "6.1": "6.1", "6": "", "6.12-rc1": "6.12"} {
		if got := shortVersion(in); got != want {
			t.Errorf("shortVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
