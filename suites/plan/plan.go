// Package plan turns the suite's knobs (kernels, scenarios, offsets,
// repeats, seed) into the list of trials the Ginkgo table runs. Every
// parallel Ginkgo process builds the same list from the same knobs, so the
// list must be a pure function of them.
package plan

import (
	"cmp"
	"fmt"
	"time"

	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

// Kernel is a kernel as the user named it: any kernels.Spec (a variant,
// a bzImage path, a tree, BASE+SERIES, NAME=SPEC).
type Kernel struct {
	Name    string       // report and label name
	Spec    kernels.Spec // what to resolve
	Version string       // major.minor, "" if unknown before building
}

// Ref is the spec as given.
func (k Kernel) Ref() string { return k.Spec.Text }

// ParseKernels reads a comma-separated list of kernel specs.
func ParseKernels(list string) ([]Kernel, error) {
	specs, err := kernels.ParseSpecs(list)
	if err != nil {
		return nil, err
	}
	var out []Kernel
	for _, s := range specs {
		out = append(out, Kernel{Name: s.Name, Spec: s, Version: s.Version()})
	}
	return out, nil
}

// Options are the knobs.
type Options struct {
	Kernels   []Kernel
	Scenarios []scenario.Scenario
	Offsets   []time.Duration // empty: each scenario's own sweep
	// CutAt is -yank.cut-at, as scenario.Matrix takes it: "" each
	// scenario's own cut (its cut_at anchor, else timed), "offset" timed
	// cuts everywhere, else one anchor for every scenario.
	CutAt   string
	Repeats int
	Seed    int64
	// Seed drives the jitter.
	// Jitter moves each trial's offset by a seeded random amount in
	// [-Jitter, +Jitter], so repeats probe around the nominal offset.
	Jitter   time.Duration
	Manifest *expect.Manifest
	Fallback expect.Class // expectations for kernels missing from the manifest
}

// Trial is one planned spec: a trial of the matrix (scenario.Matrix
// expands it, as for `yank run`) with the kernel's expectation.
type Trial struct {
	Kernel   Kernel
	Scenario scenario.Scenario
	Nominal  time.Duration // the offset the heatmap column and the expectation use
	Offset   time.Duration // the offset actually requested (Nominal + jitter)
	// Anchor is the anchored cut's event ("" timed): Nominal and Offset
	// are then delays after its hit.
	Anchor string
	Repeat int // 1-based
	Expect expect.Expectation
	Class  expect.Class
	Smoke  bool
}

// Planned is the trial as the matrix planned it (engine.RunOne runs it).
func (t Trial) Planned() scenario.Planned {
	return scenario.Planned{Kernel: t.Kernel.Name, Scenario: t.Scenario, Nominal: t.Nominal, Offset: t.Offset, Anchor: t.Anchor, Repeat: t.Repeat}
}

// Name is the spec text: unique and stable for a given set of knobs.
func (t Trial) Name() string {
	s := fmt.Sprintf("%s %s @%s #%d", t.Kernel.Name, t.Scenario.Name, scenario.CutLabel(t.Anchor, t.Nominal), t.Repeat)
	if t.Offset != t.Nominal {
		s += fmt.Sprintf(" (at %s)", t.Offset)
	}
	return s
}

// Labels are the Ginkgo labels: kernel:<k>, linux:<major.minor> (when
// known), scenario:<s>, removal:<r>, offset:<o> (the delay after the
// anchor for an anchored cut), cut-at:<symbol> or cut-at:offset,
// expect:<class> and smoke for the CI subset.
func (t Trial) Labels() []string {
	l := []string{
		"kernel:" + scenario.SafeName(t.Kernel.Name),
		"scenario:" + t.Scenario.Name,
		"removal:" + string(t.Scenario.Removal),
		"offset:" + t.Nominal.String(),
		"cut-at:" + scenario.SafeName(cmp.Or(t.Anchor, scenario.CutTimed)),
		"expect:" + string(t.Class),
	}
	if t.Kernel.Version != "" {
		l = append(l, "linux:"+t.Kernel.Version)
	}
	if t.Smoke {
		l = append(l, "smoke")
	}
	return l
}

// Build expands the knobs into trials. The seed drives the offset jitter;
// the run order is Ginkgo's, shuffled by the same seed (Ginkgo sorts specs
// that share a code location by their text, so an order set here would be
// lost).
func Build(o Options) ([]Trial, error) {
	m := o.Manifest
	if m == nil {
		m = expect.Default
	}
	matrix := scenario.Matrix{Scenarios: o.Scenarios, Offsets: o.Offsets, CutAt: o.CutAt, Repeats: o.Repeats, Jitter: o.Jitter, Seed: o.Seed}
	byName := map[string]Kernel{}
	for _, k := range o.Kernels {
		byName[k.Name] = k
		matrix.Kernels = append(matrix.Kernels, k.Name)
	}
	planned, err := matrix.Expand()
	if err != nil {
		return nil, err
	}
	var trials []Trial
	for _, p := range planned {
		class := o.Fallback
		if mk, ok := m.Kernels[p.Kernel]; ok {
			class = mk.Expect
		}
		if class == "" {
			class = expect.None
		}
		trials = append(trials, Trial{
			Kernel: byName[p.Kernel], Scenario: p.Scenario, Nominal: p.Nominal, Offset: p.Offset, Anchor: p.Anchor, Repeat: p.Repeat, Class: class,
			Expect: m.For(p.Kernel, o.Fallback, p.Scenario.Name, p.Anchor, p.Nominal),
			Smoke:  m.IsSmoke(p.Kernel, p.Scenario.Name, p.Anchor, p.Nominal),
		})
	}
	return trials, nil
}
