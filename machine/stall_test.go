package machine

import (
	"os"
	"strings"
	"testing"
)

// HMP's "info registers -a" from QEMU 7.2 under TCG, a 2-vCPU guest on
// Debian's kernel: vCPU 0 idles (HLT=1), vCPU 1 runs.
func TestParseRegisters(t *testing.T) {
	out, err := os.ReadFile("testdata/info-registers-2cpu.txt")
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := parseRegisters(string(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []vcpuState{{0, 0xffffffff8103fc9b, true}, {1, 0xffffffff819f77a3, false}}
	if len(cpus) != len(want) {
		t.Fatalf("parsed %+v, want %+v", cpus, want)
	}
	for i := range want {
		if cpus[i] != want[i] {
			t.Errorf("vCPU %d: %+v, want %+v", i, cpus[i], want[i])
		}
	}
	for _, bad := range []string{"", "Error: not a command", "CPU#0\nRAX=0\n"} {
		if _, err := parseRegisters(bad); err == nil {
			t.Errorf("parseRegisters(%q): no error", bad)
		}
	}
	if _, err := parseRegisters(strings.Replace(string(out), "RIP=ffffffff8103fc9b", "RIP=zz", 1)); err == nil {
		t.Error("a CPU without a readable RIP parsed")
	}
}
