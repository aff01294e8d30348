package report

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// Timing summarizes how precisely the trials of one scenario and outcome
// hit their offsets and how long detection took: the numbers that show
// whether running guests in parallel skews the measurements. (Detection
// differs by scenario: a graceful removal first flushes the dirty pages.)
type Timing struct {
	Scenario string
	Outcome  scenario.Outcome
	N        int
	// OffsetError is achieved minus requested offset (the removal's delay).
	OffsetErrorMean, OffsetErrorMax time.Duration
	DetectMean, DetectMax           time.Duration
	DurationMean                    time.Duration
}

// Timings are per scenario and outcome, over the trials with a removal.
func Timings(recs []Record) []Timing {
	by := map[string]*Timing{}
	var order []string
	for _, r := range recs {
		v := r.Verdict
		if v.Timeline.Removal.IsZero() && v.AchievedOffset == 0 {
			continue // never got to the removal
		}
		key := r.Scenario + " " + string(v.Outcome)
		t := by[key]
		if t == nil {
			t = &Timing{Scenario: r.Scenario, Outcome: v.Outcome}
			by[key] = t
			order = append(order, key)
		}
		t.N++
		e := time.Duration(v.AchievedOffset - v.RequestedOffset)
		t.OffsetErrorMean += e
		t.OffsetErrorMax = max(t.OffsetErrorMax, e)
		t.DetectMean += time.Duration(v.DetectionLatency)
		t.DetectMax = max(t.DetectMax, time.Duration(v.DetectionLatency))
		t.DurationMean += time.Duration(v.Duration)
	}
	slices.Sort(order)
	var out []Timing
	for _, o := range order {
		t := by[o]
		n := time.Duration(t.N)
		t.OffsetErrorMean /= n
		t.DetectMean /= n
		t.DurationMean /= n
		out = append(out, *t)
	}
	return out
}

// WriteTimings prints the timings as a small table.
func WriteTimings(w io.Writer, ts []Timing) {
	fmt.Fprintf(w, "%-14s %-12s %4s  %-22s %-22s %s\n", "scenario", "outcome", "n", "offset error mean/max", "detection mean/max", "trial mean")
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	for _, t := range ts {
		fmt.Fprintf(w, "%-14s %-12s %4d  %-22s %-22s %s\n", t.Scenario, t.Outcome, t.N,
			ms(t.OffsetErrorMean)+" / "+ms(t.OffsetErrorMax), ms(t.DetectMean)+" / "+ms(t.DetectMax), t.DurationMean.Round(100*time.Millisecond))
	}
}

// WriteRates prints each cell's hang rate, with the rate rule's judgement
// where there is one.
func WriteRates(w io.Writer, rates []CellRate) {
	if len(rates) > 0 {
		fmt.Fprintln(w, "hang rates (hung / tested, 95 % Wilson interval; MISSED apart):")
	}
	for _, c := range rates {
		fmt.Fprintf(w, "  %s\n", c)
	}
}
