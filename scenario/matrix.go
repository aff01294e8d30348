package scenario

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"time"
)

// Matrix is what a run covers: every kernel x scenario x offset x repeat.
// `yank run`, `yank libvirt` and the suites all plan their trials with
// Matrix.Expand, so the same words give the same trials everywhere.
type Matrix struct {
	Kernels   []string // kernel names, as reports show them
	Scenarios []Scenario
	Offsets   []time.Duration // empty: each scenario's own sweep
	Repeats   int             // trials per kernel x scenario x offset, at least 1
	// Jitter moves each trial's offset by a random amount in [-Jitter,
	// +Jitter] drawn from Seed, so repeats probe around the nominal offset.
	Jitter time.Duration
	Seed   int64
}

// Planned is one trial of a matrix.
type Planned struct {
	Kernel   string
	Scenario Scenario
	Nominal  time.Duration // the offset the table column and expectations use
	Offset   time.Duration // the offset requested (Nominal + jitter)
	Repeat   int           // 1-based
}

// Expand lists the matrix's trials, kernel by kernel, scenario by
// scenario, offset by offset, repeat by repeat. It is a pure function of
// the matrix: parallel Ginkgo processes that expand the same matrix get
// the same list.
func (m Matrix) Expand() ([]Planned, error) {
	if m.Repeats < 1 {
		return nil, fmt.Errorf("repeats %d: want at least 1", m.Repeats)
	}
	if len(m.Kernels) == 0 {
		return nil, fmt.Errorf("no kernels given")
	}
	if len(m.Scenarios) == 0 {
		return nil, fmt.Errorf("no scenarios given (known: %s)", strings.Join(Names(), ", "))
	}
	for _, o := range m.Offsets {
		if err := checkOffset(o); err != nil {
			return nil, err
		}
	}
	if m.Jitter < 0 {
		return nil, fmt.Errorf("jitter %s: want 0 or more", m.Jitter)
	}
	var out []Planned
	for _, k := range m.Kernels {
		for _, sc := range m.Scenarios {
			offsets := m.Offsets
			if len(offsets) == 0 {
				for _, d := range sc.Offsets {
					offsets = append(offsets, time.Duration(d))
				}
			}
			for _, off := range offsets {
				for r := 1; r <= m.Repeats; r++ {
					out = append(out, Planned{Kernel: k, Scenario: sc, Nominal: off, Offset: off, Repeat: r})
				}
			}
		}
	}
	if m.Jitter > 0 {
		rng := rand.New(rand.NewPCG(uint64(m.Seed), 0x79616e6b)) // "yank"
		for i := range out {
			j := time.Duration(rng.Int64N(int64(2*m.Jitter)+1)) - m.Jitter
			out[i].Offset = max(0, out[i].Nominal+j).Round(time.Millisecond)
		}
	}
	return out, nil
}

// Dir is the trial's evidence dir under root:
// <kernel>/<scenario>/<nominal offset>-r<repeat>.
func (p Planned) Dir(root string) string {
	return filepath.Join(root, SafeName(p.Kernel), p.Scenario.Name, fmt.Sprintf("%s-r%d", p.Nominal, p.Repeat))
}

// SafeName turns a name (a kernel may be named by a path) into one path
// element that is also a valid Ginkgo label value.
func SafeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune("&|!,()/ :\\", r) {
			return '_'
		}
		return r
	}, s)
	return strings.Trim(s, "_.")
}
