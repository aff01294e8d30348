// Package windowmap finds where a scenario's race window lies after its
// anchor: it sweeps delays after the anchor's hit, each probe a few
// trials, and bisects on the share of trials that cut inside the window
// (tested, not MISSED) until each edge is pinned to a resolution or found
// blurred. It knows nothing of QEMU: a Runner runs the trials (`yank map`
// gives it real ones; the tests give it a model of a window).
//
// Stopping rule. A probe runs Batch trials (5); it is inside when the 95 %
// Wilson interval of its in-window share lies above 1/2, outside when it
// lies below, and otherwise it runs up to MaxTrials (10) in all and, if
// still undecided, is "blurred": the edge is not sharp there and the
// bisection stops at it. 5 of 5 gives [57 %, 100 %] (inside); 4 of 5 does
// not decide. A bisection stops when the inside and outside probes
// around an edge are at most Resolution apart.
package windowmap

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// Runner runs n trials cut delay after the anchor's hit and returns their
// outcomes. first numbers them (first, first+1, ...) so that their
// evidence never overwrites an earlier probe's.
type Runner func(ctx context.Context, delay time.Duration, n, first int) ([]scenario.Outcome, error)

// Options bound the sweep.
type Options struct {
	// MaxDelay is where the end edge is first looked for (default 2s); a
	// window still open there is looked for at twice the delay, up to
	// scenario.MaxAnchorDelay.
	MaxDelay   time.Duration
	Resolution time.Duration // default 10ms
	Batch      int           // a probe's first trials (default 5)
	MaxTrials  int           // a probe's trials at most (default 10)
}

func (o Options) withDefaults() Options {
	if o.MaxDelay == 0 {
		o.MaxDelay = 2 * time.Second
	}
	if o.Resolution == 0 {
		o.Resolution = 10 * time.Millisecond
	}
	if o.Batch == 0 {
		o.Batch = 5
	}
	if o.MaxTrials == 0 {
		o.MaxTrials = 10
	}
	return o
}

// Check rejects options that cannot make a map.
func (o Options) Check() error {
	o = o.withDefaults()
	var errs []error
	if o.MaxDelay <= 0 || o.MaxDelay > scenario.MaxAnchorDelay {
		errs = append(errs, fmt.Errorf("max delay %s: want more than 0s, up to %s", o.MaxDelay, scenario.MaxAnchorDelay))
	}
	if o.Resolution < time.Millisecond || o.Resolution >= o.MaxDelay {
		errs = append(errs, fmt.Errorf("resolution %s: want 1ms or more, below the max delay %s", o.Resolution, o.MaxDelay))
	}
	if o.Batch < 5 {
		errs = append(errs, fmt.Errorf("batch %d: want at least 5 (fewer trials can never decide: 4 of 4 has a Wilson interval reaching below 1/2)", o.Batch))
	}
	if o.MaxTrials < o.Batch || o.MaxTrials > 50 {
		errs = append(errs, fmt.Errorf("max trials %d: want %d (the batch) to 50", o.MaxTrials, o.Batch))
	}
	return errors.Join(errs...)
}

// State is a probe's decision.
type State string

const (
	Inside  State = "inside"
	Outside State = "outside"
	Blurred State = "blurred" // MaxTrials and still undecided
	// Unknown: the probe's trials were not judged (INFRA-ERROR,
	// UNREACHED): it says nothing about the window.
	Unknown State = "unknown"
)

// Probe is the trials at one delay.
type Probe struct {
	Delay    scenario.Duration  `json:"delay"`
	Outcomes []scenario.Outcome `json:"outcomes"`
	Rate     scenario.Rate      `json:"rate"` // HANGs over tested trials
	// In is the in-window share, tested/(tested+missed), with its 95 %
	// Wilson interval.
	In     float64 `json:"in_window"`
	InLo   float64 `json:"in_window_lo"`
	InHi   float64 `json:"in_window_hi"`
	State  State   `json:"state"`
	Reason string  `json:"reason,omitempty"` // why Unknown
}

func (p *Probe) update(maxTrials int) {
	p.Rate = scenario.RateOf(p.Outcomes)
	judged := p.Rate.Tested + p.Rate.Missed
	p.InLo, p.InHi = scenario.Wilson(p.Rate.Tested, judged)
	p.In = 0
	if judged > 0 {
		p.In = float64(p.Rate.Tested) / float64(judged)
	}
	switch {
	case judged < len(p.Outcomes):
		p.State, p.Reason = Unknown, fmt.Sprintf("%d of %d trials not judged (%d INFRA-ERROR, %d UNREACHED)", len(p.Outcomes)-judged, len(p.Outcomes), p.Rate.Infra, p.Rate.Unreached)
	case p.InLo > 0.5:
		p.State = Inside
	case p.InHi < 0.5:
		p.State = Outside
	case len(p.Outcomes) >= maxTrials:
		p.State = Blurred
	default:
		p.State = ""
	}
}

// MissedShare is the MISSED share of the judged trials.
func (p Probe) MissedShare() float64 { return 1 - p.In }

// Edge is where the window opens or closes: between the last probe on
// one side and the first on the other, Inside and Outside.
type Edge struct {
	Inside  scenario.Duration `json:"inside"`
	Outside scenario.Duration `json:"outside"`
	Found   bool              `json:"found"`
	Note    string            `json:"note"`
}

// Map is a sweep's result.
type Map struct {
	Options Options `json:"options"`
	Probes  []Probe `json:"probes"` // by delay
	Start   Edge    `json:"start"`
	End     Edge    `json:"end"`
	Trials  int     `json:"trials"`
}

// Sweep maps the window.
func Sweep(ctx context.Context, run Runner, o Options) (*Map, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	s := &sweeper{run: run, o: o, m: &Map{Options: o}, at: map[time.Duration]*Probe{}}
	err := s.sweep(ctx)
	for _, p := range s.at {
		s.m.Probes = append(s.m.Probes, *p)
	}
	sort.Slice(s.m.Probes, func(i, j int) bool { return s.m.Probes[i].Delay < s.m.Probes[j].Delay })
	return s.m, err
}

type sweeper struct {
	run Runner
	o   Options
	m   *Map
	at  map[time.Duration]*Probe
}

// probe decides the state at d, running trials as the stopping rule asks.
func (s *sweeper) probe(ctx context.Context, d time.Duration) (State, error) {
	d = d.Round(time.Millisecond)
	p := s.at[d]
	if p == nil {
		p = &Probe{Delay: scenario.Duration(d)}
		s.at[d] = p
	}
	for p.State == "" {
		n := s.o.Batch
		if len(p.Outcomes) > 0 {
			n = s.o.MaxTrials - len(p.Outcomes)
		}
		out, err := s.run(ctx, d, n, s.m.Trials+1)
		s.m.Trials += len(out)
		p.Outcomes = append(p.Outcomes, out...)
		if err != nil {
			return "", fmt.Errorf("delay %s: %w", d, err)
		}
		p.update(s.o.MaxTrials)
	}
	return p.State, nil
}

func (s *sweeper) sweep(ctx context.Context) error {
	st, err := s.probe(ctx, 0)
	if err != nil {
		return err
	}
	lo := time.Duration(0) // a delay inside the window
	switch st {
	case Inside:
		s.m.Start = Edge{Found: true, Note: "open at the anchor's hit (delay 0)"}
	case Unknown:
		return fmt.Errorf("delay 0: %s: fix that first (yank run -cut-at ... -offsets 0s shows why)", s.at[0].Reason)
	case Blurred:
		s.m.Start = Edge{Note: "at delay 0 the trials neither hit nor miss the window clearly"}
		s.m.End = Edge{Note: "not looked for: the start is blurred"}
		return nil
	case Outside:
		// The window opens later: look for it at growing delays.
		out := time.Duration(0)
		found := false
		for d := s.o.Resolution; d <= s.o.MaxDelay; d *= 2 {
			st, err := s.probe(ctx, d)
			if err != nil {
				return err
			}
			if st == Inside {
				lo, found = d, true
				break
			}
			if st != Outside {
				s.m.Start = Edge{Outside: scenario.Duration(out), Note: fmt.Sprintf("%s at %s", st, d)}
				return nil
			}
			out = d
		}
		if !found {
			s.m.Start = Edge{Note: fmt.Sprintf("never inside from 0s to %s: the anchor may not open this window", s.o.MaxDelay)}
			return nil
		}
		e, err := s.bisect(ctx, out, lo, Outside)
		if err != nil {
			return err
		}
		s.m.Start = e
	}
	// The end: first outside delay at MaxDelay, doubled while inside.
	hi := s.o.MaxDelay
	for {
		st, err := s.probe(ctx, hi)
		if err != nil {
			return err
		}
		if st == Outside {
			break
		}
		if st != Inside {
			s.m.End = Edge{Inside: scenario.Duration(lo), Note: fmt.Sprintf("%s at %s", st, hi)}
			return nil
		}
		lo = hi
		if hi >= scenario.MaxAnchorDelay {
			s.m.End = Edge{Inside: scenario.Duration(hi), Note: fmt.Sprintf("still open at %s, the longest delay yank cuts at", hi)}
			return nil
		}
		hi = min(2*hi, scenario.MaxAnchorDelay)
	}
	e, err := s.bisect(ctx, lo, hi, Inside)
	if err != nil {
		return err
	}
	s.m.End = e
	return nil
}

// bisect narrows an edge between a and b (a < b), a being in state
// first and b the other side.
func (s *sweeper) bisect(ctx context.Context, a, b time.Duration, first State) (Edge, error) {
	for b-a > s.o.Resolution {
		mid := (a + (b-a)/2).Round(time.Millisecond)
		st, err := s.probe(ctx, mid)
		if err != nil {
			return Edge{}, err
		}
		switch {
		case st == first:
			a = mid
		case st == Inside || st == Outside:
			b = mid
		default:
			return s.edge(a, b, first, fmt.Sprintf("%s at %s: the edge is not sharp there", st, mid)), nil
		}
	}
	e := s.edge(a, b, first, "")
	e.Found = true
	e.Note = fmt.Sprintf("between %s and %s", a, b)
	return e, nil
}

func (s *sweeper) edge(a, b time.Duration, first State, note string) Edge {
	if first == Inside {
		return Edge{Inside: scenario.Duration(a), Outside: scenario.Duration(b), Note: note}
	}
	return Edge{Inside: scenario.Duration(b), Outside: scenario.Duration(a), Note: note}
}
