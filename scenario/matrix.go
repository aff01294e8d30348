package scenario

import (
	"github.com/yank-dev/yank/anchor"

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
	Offsets   []time.Duration // empty: each scenario's own sweep (delays after the anchor for anchored cuts)
	// CutAt is -cut-at: "" cuts where each scenario says (its cut_at
	// anchor if it names one, else timed), CutTimed ("offset") cuts every
	// scenario at its offsets after T0, anything else is an anchor
	// (anchor.Parse) for every scenario.
	CutAt   string
	Repeats int // trials per kernel x scenario x offset, at least 1
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
	// Anchor is the anchored cut's event ("" timed): Nominal and Offset
	// are then the delay after its hit.
	Anchor string
	Repeat int // 1-based
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
	if m.CutAt != "" && m.CutAt != CutTimed {
		if _, err := anchor.Parse(m.CutAt); err != nil {
			return nil, fmt.Errorf("cut-at: %w (or %q for timed cuts)", err, CutTimed)
		}
	}
	for _, o := range m.Offsets {
		if m.CutAt != "" && m.CutAt != CutTimed {
			if o < 0 || o > MaxAnchorDelay {
				return nil, fmt.Errorf("delay %s after anchor %s: want 0s to %s", o, m.CutAt, MaxAnchorDelay)
			}
		} else if err := checkOffset(o); err != nil {
			return nil, err
		}
	}
	if m.Jitter < 0 {
		return nil, fmt.Errorf("jitter %s: want 0 or more", m.Jitter)
	}
	var out []Planned
	for _, k := range m.Kernels {
		for _, sc := range m.Scenarios {
			at := m.AnchorFor(sc)
			offsets := m.Offsets
			if len(offsets) == 0 && at != "" {
				offsets = sc.Delays()
			}
			if len(offsets) == 0 {
				for _, d := range sc.Offsets {
					offsets = append(offsets, time.Duration(d))
				}
			}
			for _, off := range offsets {
				if at != "" && off > MaxAnchorDelay {
					return nil, fmt.Errorf("scenario %s: delay %s after anchor %s: want 0s to %s (-offsets are delays after the anchor; -cut-at %s cuts at offsets after T0)", sc.Name, off, at, MaxAnchorDelay, CutTimed)
				}
				for r := 1; r <= m.Repeats; r++ {
					out = append(out, Planned{Kernel: k, Scenario: sc, Nominal: off, Offset: off, Repeat: r, Anchor: at})
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

// AnchorFor is the anchor sc's trials cut at ("" for timed cuts).
func (m Matrix) AnchorFor(sc Scenario) string {
	switch m.CutAt {
	case "":
		return sc.CutAt
	case CutTimed:
		return ""
	}
	return m.CutAt
}

// Dir is the trial's evidence dir under root:
// <kernel>/<scenario>/<cut>-r<repeat>, the cut as CutLabel writes it.
func (p Planned) Dir(root string) string {
	return filepath.Join(root, SafeName(p.Kernel), p.Scenario.Name, fmt.Sprintf("%s-r%d", SafeName(p.Cut()), p.Repeat))
}

// Cut is the planned cut as tables show it (CutLabel).
func (p Planned) Cut() string { return CutLabel(p.Anchor, p.Nominal) }

// CutLabel names a cut: "1s" (timed: after T0) or "del_gendisk+0s"
// (anchored: the delay after the anchor's hit; a symbol offset is hex,
// "blk_execute_rq+0x10+5ms").
func CutLabel(anchor string, d time.Duration) string {
	if anchor == "" {
		return d.String()
	}
	return anchor + "+" + d.String()
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
