package anchor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/System.map is an excerpt of stock 6.1.192's (yank's tinyconfig
// build: nm -n vmlinux around the built-in scenarios' anchors), plus a
// data and an absolute symbol that must not count as functions.

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Anchor
	}{
		{"del_gendisk", Anchor{"del_gendisk", 0, 1}},
		{"blk_execute_rq+0x10", Anchor{"blk_execute_rq", 0x10, 1}},
		{"blk_execute_rq+0X1f@2", Anchor{"blk_execute_rq", 0x1f, 2}},
		{"sd_suspend_common.isra.0@1000", Anchor{"sd_suspend_common.isra.0", 0, 1000}},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, _ := Parse(got.String()); back != got {
			t.Errorf("%q: String %q does not parse back", tc.in, got.String())
		}
	}
	for _, bad := range []string{"", "x+0xZZ", "x+16", "x@0", "x@1001", "1abc", "del gendisk", "x+0x", "x@", "x+0x100000000"} {
		if a, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, a)
		} else if !strings.Contains(err.Error(), "SYMBOL") && !strings.Contains(err.Error(), "want 1 to") && !strings.Contains(err.Error(), "offset") {
			t.Errorf("Parse(%q): %v does not say what to write", bad, err)
		}
	}
}

func TestSystemMap(t *testing.T) {
	s, err := ReadSystemMap("testdata/System.map")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec string
		want uint64
	}{
		{"del_gendisk", 0xffffffff8113cb02},
		{"del_gendisk+0x10", 0xffffffff8113cb12},
		{"blk_execute_rq@3", 0xffffffff811386f3},
		{"__do_sys_sync", 0xffffffff810ffbf1}, // shares its address with __x64_sys_sync
	} {
		a, _ := Parse(tc.spec)
		got, err := s.Address(a)
		if err != nil || got != tc.want {
			t.Errorf("%s: %#x, %v; want %#x", tc.spec, got, err, tc.want)
		}
	}
	// del_gendisk is 0x226 bytes long (invalidate_disk follows).
	a, _ := Parse("del_gendisk+0x226")
	if _, err := s.Address(a); err == nil || !strings.Contains(err.Error(), "past the end of del_gendisk") {
		t.Errorf("offset past the end: %v", err)
	}
	for _, notText := range []string{"some_data", "sp_offset"} {
		a, _ := Parse(notText)
		if _, err := s.Address(a); err == nil {
			t.Errorf("%s is not a function, but resolved", notText)
		}
	}
}

// An instruction pointer is named by the function it lies in (a stalled
// guest's report); of two names at one address, the first listed.
func TestDescribe(t *testing.T) {
	s, err := ReadSystemMap("testdata/System.map")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[uint64]string{
		0xffffffff8113cb02: "del_gendisk",
		0xffffffff8113cb12: "del_gendisk+0x10",
		0xffffffff810ffbf5: "__do_sys_sync+0x4",
		0xffffffff810ffa75: "", // below the first symbol
	} {
		if got := s.Describe(addr); got != want {
			t.Errorf("Describe(%#x) = %q, want %q", addr, got, want)
		}
	}
}

// A misspelt function names the nearest ones, so the user can fix it.
func TestUnknownSymbolNamesTheNearest(t *testing.T) {
	s, err := ReadSystemMap("testdata/System.map")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Parse("del_gendisc")
	_, err = s.Address(a)
	if err == nil {
		t.Fatal("del_gendisc resolved")
	}
	msg := err.Error()
	if !strings.Contains(msg, `no function "del_gendisc"`) || !strings.Contains(msg, "nearest: del_gendisk, ") {
		t.Errorf("error %q: want the nearest names, del_gendisk first", msg)
	}
	if got := s.Nearest("blk_execute", 3); len(got) != 3 || got[0] != "blk_execute_rq" {
		t.Errorf("Nearest: %v", got)
	}
}

func TestLookup(t *testing.T) {
	// A cache entry: System.map beside the bzImage.
	dir := t.TempDir()
	bz := filepath.Join(dir, "bzImage")
	os.WriteFile(bz, []byte("not a kernel"), 0o644)
	if _, err := Lookup(bz); err == nil || !strings.Contains(err.Error(), "-cut-at offset") || !strings.Contains(err.Error(), bz) {
		t.Errorf("no symbols: %v (want the kernel named and the way out)", err)
	}
	m, _ := os.ReadFile("testdata/System.map")
	// A kernel tree: arch/x86/boot/bzImage, System.map at the top.
	tree := filepath.Join(dir, "linux")
	boot := filepath.Join(tree, "arch", "x86", "boot")
	os.MkdirAll(boot, 0o755)
	os.WriteFile(filepath.Join(boot, "bzImage"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(tree, "System.map"), m, 0o644)
	s, err := Lookup(filepath.Join(boot, "bzImage"))
	if err != nil || s.Len() == 0 || !strings.HasSuffix(s.Source, "System.map") {
		t.Fatalf("tree: %v, %v", s, err)
	}
	// A vmlinux when there is no System.map: testdata/vmlinux is an ELF
	// object (cc -c of three functions) with a symbol table, as a
	// kernel's vmlinux has.
	vdir := filepath.Join(dir, "entry")
	os.MkdirAll(vdir, 0o755)
	elfData, _ := os.ReadFile("testdata/vmlinux")
	os.WriteFile(filepath.Join(vdir, "vmlinux"), elfData, 0o644)
	v, err := Lookup(filepath.Join(vdir, "bzImage"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Address(Anchor{Symbol: "blk_execute_rq", Hit: 1}); err != nil || got != 0x16 {
		t.Errorf("vmlinux blk_execute_rq: %#x, %v; want 0x16", got, err)
	}
	bad := filepath.Join(dir, "System.map.bad")
	os.WriteFile(bad, []byte("zzzz T foo\n"), 0o644)
	if _, err := ReadSystemMap(bad); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("a corrupt System.map: %v (want the line named)", err)
	}
}
