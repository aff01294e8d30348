package kernels_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/kernels/kernelstest"
)

// fakeEntry is a cache entry that passes for a built stock kernel.
func fakeEntry(t *testing.T, release, metaRelease string) kernels.Artifact {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "0123456789abcdef01234567")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	kernelstest.FakeBzImage(t, dir, release+" (yank@yank) #1")
	for f, body := range map[string]string{"vmlinux": "ELF", ".config": "CONFIG_PCI=y\n", "build.log": "make\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := json.Marshal(kernels.Meta{Variant: "stock", Key: filepath.Base(dir), Release: metaRelease})
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), m, 0o644); err != nil {
		t.Fatal(err)
	}
	return kernels.Artifact{Variant: "stock", Dir: dir}
}

func export(t *testing.T, a kernels.Artifact) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := kernels.Export(context.Background(), &buf, []kernels.Artifact{a}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite copies an export, letting edit change or drop members.
func rewrite(t *testing.T, b []byte, edit func(name string, body []byte) ([]byte, bool)) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		body, keep := edit(h.Name, body)
		if !keep {
			continue
		}
		h.Size = int64(len(body))
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.Close()
	gw.Close()
	return out.Bytes()
}

// An import is refused, with the reason, whenever the tarball is not
// exactly what an export of a matching build wrote; nothing is installed.
func TestImportRefuses(t *testing.T) {
	good := export(t, fakeEntry(t, "6.1.192", "6.1.192"))
	for _, c := range []struct {
		name string
		tar  []byte
		want string
	}{
		{"not a tarball", []byte("hello"), "not a yank kernel export"},
		{"damaged file", rewrite(t, good, func(n string, b []byte) ([]byte, bool) {
			if strings.HasSuffix(n, "/vmlinux") {
				b = []byte("ELF but changed")
			}
			return b, true
		}), "vmlinux: sha256"},
		{"missing file", rewrite(t, good, func(n string, b []byte) ([]byte, bool) { return b, !strings.HasSuffix(n, "/.config") }), "truncated: missing 0123456789abcdef01234567/.config"},
		{"header disagrees", export(t, fakeEntry(t, "6.1.191", "6.1.192")), "boot header says release 6.1.191, meta.json 6.1.192"},
		// A fake key is never the one this machine computes for stock (or,
		// without linux-source-6.1, stock cannot be planned at all).
		{"other inputs", good, "import stock (key 0123456789abcdef01234567)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			_, err := kernels.Import(context.Background(), bytes.NewReader(c.tar), cache)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Import: %v; want an error with %q", err, c.want)
			}
			if ents, _ := filepath.Glob(filepath.Join(cache, "kernels", "*")); len(ents) > 1 { // import.lock only
				t.Errorf("a refused import left %v", ents)
			}
		})
	}
}

func TestImportRefusesUnlistedMember(t *testing.T) {
	good := export(t, fakeEntry(t, "6.1.192", "6.1.192"))
	var buf bytes.Buffer
	gz, _ := gzip.NewReader(bytes.NewReader(good))
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	// The original members, then one the manifest does not list.
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		tw.WriteHeader(h)
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Name: "../../etc/evil", Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	gw.Close()
	_, err := kernels.Import(context.Background(), &buf, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `holds "../../etc/evil", which its manifest does not list`) {
		t.Fatalf("Import: %v", err)
	}
}

func TestExportRefusesNonVariants(t *testing.T) {
	a := fakeEntry(t, "6.1.192", "6.1.192")
	m, _ := json.Marshal(kernels.Meta{Variant: "tree:/src/linux@abc", Key: filepath.Base(a.Dir), Release: "6.1.192"})
	os.WriteFile(filepath.Join(a.Dir, "meta.json"), m, 0o644)
	err := kernels.Export(context.Background(), io.Discard, []kernels.Artifact{a})
	if err == nil || !strings.Contains(err.Error(), "only variants can be exported") {
		t.Fatalf("Export: %v", err)
	}
}
