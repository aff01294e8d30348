package machine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/anchor"
)

// stallSamples and stallSampleGap: how a stalled guest's vCPUs are looked
// at. Two looks apart tell a vCPU that is stuck on one instruction from
// one that spins in a loop or idles.
const (
	stallSamples   = 2
	stallSampleGap = 500 * time.Millisecond
)

// vcpuState is one vCPU in HMP's "info registers -a".
type vcpuState struct {
	CPU    int
	RIP    uint64
	Halted bool // HLT=1: idle, waiting for an interrupt
}

var (
	cpuHeader = regexp.MustCompile(`(?m)^CPU#(\d+)`)
	ripField  = regexp.MustCompile(`\b[RE]IP=([0-9a-fA-F]+)`) // EIP= before long mode
	hltField  = regexp.MustCompile(`HLT=([01])`)
)

// parseRegisters reads each vCPU's instruction pointer and halt flag from
// HMP's "info registers -a".
func parseRegisters(out string) ([]vcpuState, error) {
	heads := cpuHeader.FindAllStringSubmatchIndex(out, -1)
	if len(heads) == 0 {
		return nil, fmt.Errorf("no CPU#N in %q", firstLine(out))
	}
	var cpus []vcpuState
	for i, h := range heads {
		end := len(out)
		if i+1 < len(heads) {
			end = heads[i+1][0]
		}
		block := out[h[0]:end]
		n, _ := strconv.Atoi(out[h[2]:h[3]])
		rip := ripField.FindStringSubmatch(block)
		if rip == nil {
			return nil, fmt.Errorf("CPU#%d: no RIP= or EIP= in the registers", n)
		}
		addr, err := strconv.ParseUint(rip[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("CPU#%d: RIP=%s: %w", n, rip[1], err)
		}
		hlt := hltField.FindStringSubmatch(block)
		cpus = append(cpus, vcpuState{CPU: n, RIP: addr, Halted: hlt != nil && hlt[1] == "1"})
	}
	return cpus, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// stallReport says what a guest that never got ready was doing when its
// boot deadline passed: QEMU's run state, how long the console had been
// silent, and each vCPU's instruction pointer looked at twice (named from
// System.map when the guest runs without KASLR). A boot that stalls once
// in hundreds leaves nothing else to go on. It never fails: what it cannot
// read, it says.
func (m *Machine) stallReport(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var b strings.Builder
	if lines := m.Console.Lines(0); len(lines) > 0 {
		fmt.Fprintf(&b, "console silent for %s since its last line\n", time.Since(lines[len(lines)-1].Time).Round(100*time.Millisecond))
	}
	if m.QMP == nil {
		b.WriteString("no QMP connection: QEMU's state unknown\n")
		return b.String()
	}
	if st, err := m.QMP.QueryStatus(ctx); err != nil {
		fmt.Fprintf(&b, "QEMU's status: %v\n", err)
	} else {
		fmt.Fprintf(&b, "QEMU's status: %s\n", st.Status)
	}
	name := m.symbolizer()
	for i := range stallSamples {
		if i > 0 {
			time.Sleep(stallSampleGap)
		}
		out, err := m.QMP.HMP(ctx, "info registers -a")
		if err != nil {
			fmt.Fprintf(&b, "registers: %v\n", err)
			break
		}
		cpus, err := parseRegisters(out)
		if err != nil {
			fmt.Fprintf(&b, "registers: %v\n", err)
			break
		}
		for _, c := range cpus {
			state := "not halted"
			if c.Halted {
				state = "halted (idle)"
			}
			fmt.Fprintf(&b, "look %d: vCPU %d at %#x%s, %s\n", i+1, c.CPU, c.RIP, name(c.RIP), state)
		}
	}
	return b.String()
}

// symbolizer names kernel addresses from the guest kernel's System.map,
// when it has one and boots without KASLR (else addresses stay bare).
func (m *Machine) symbolizer() func(uint64) string {
	if !strings.Contains(" "+m.Spec.Append+" ", " nokaslr ") {
		return func(uint64) string { return " (KASLR: not named)" }
	}
	syms, err := anchor.Lookup(m.Spec.Kernel)
	if err != nil {
		return func(uint64) string { return "" }
	}
	return func(addr uint64) string {
		if s := syms.Describe(addr); s != "" {
			return " (" + s + ")"
		}
		return ""
	}
}
