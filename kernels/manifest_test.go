package kernels

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManifest(t *testing.T) {
	names := map[string]Variant{}
	for _, v := range Variants() {
		names[v.Name] = v
	}
	for _, n := range []string{"stock", "rfc-v3", "debian"} {
		if _, ok := names[n]; !ok {
			t.Errorf("variant %s missing", n)
		}
	}
	if names["rfc-v3"].Base != "stock" || len(names["stock"].Patches) != 0 || names["debian"].Prebuilt != "debian" {
		t.Errorf("unexpected manifest: %+v", names)
	}
	if _, err := FindVariant("nope"); err == nil {
		t.Error("unknown variant accepted")
	}
	c, err := chain("rfc-v3")
	if err != nil || len(c) != 2 || c[0].Name != "stock" {
		t.Errorf("chain(rfc-v3) = %v, %v", c, err)
	}
}

func TestDebianFakeRoot(t *testing.T) {
	root := t.TempDir()
	old := debianRoot
	debianRoot = root
	defer func() { debianRoot = old }()
	if _, err := Debian(); err == nil {
		t.Fatal("want error without a kernel")
	} else if want := "apt-get install linux-image-amd64"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	for _, rel := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-60-amd64"} {
		os.MkdirAll(filepath.Join(root, "boot"), 0o755)
		os.WriteFile(filepath.Join(root, "boot", "vmlinuz-"+rel), []byte("k"), 0o644)
		if rel != "6.1.0-60-amd64" { // no modules: not usable
			os.MkdirAll(filepath.Join(root, "lib/modules", rel), 0o755)
			os.WriteFile(filepath.Join(root, "lib/modules", rel, "modules.dep"), nil, 0o644)
		}
	}
	a, err := Debian()
	if err != nil {
		t.Fatal(err)
	}
	if a.Release != "6.1.0-56-amd64" || a.ModulesDir != filepath.Join(root, "lib/modules/6.1.0-56-amd64") || a.Vmlinux != "" {
		t.Errorf("got %+v", a)
	}
}

func TestCallsTarget(t *testing.T) {
	// At 0x1000: nop; call +0x10 (to 0x1016); ret.
	code := []byte{0x90, 0xe8, 0x10, 0x00, 0x00, 0x00, 0xc3}
	if !callsTarget(code, 0x1000, 0x1016) {
		t.Error("call not found")
	}
	if callsTarget(code, 0x1000, 0x1017) {
		t.Error("wrong target matched")
	}
	// Backward jmp: at 0x2000, jmp -0x100 lands at 0x2000+5-0x100.
	code = []byte{0xe9, 0x00, 0xff, 0xff, 0xff}
	if !callsTarget(code, 0x2000, 0x2005-0x100) {
		t.Error("negative displacement")
	}
	if callsTarget([]byte{0xe8, 1, 2}, 0, 0) {
		t.Error("truncated instruction matched")
	}
}
