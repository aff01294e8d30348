// Package report turns trial results (the Ginkgo JSON report of the
// hotunplug suite, or verdict.json files from `yank run`) into a matrix
// report: per scenario, a kernel x offset heatmap of hang rates with trial
// counts, and every trial's evidence one click away.
package report

import (
	"encoding/json"
	"time"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

// EntryName is the Ginkgo report entry that carries a Record.
const EntryName = "yank.trial"

// RateEntryName is the report entry, on the suite's ReportAfterSuite
// node, that carries one cell's CellRate.
const RateEntryName = "yank.rate"

// Record is one trial as the report sees it. The hotunplug suite attaches
// it to its spec with AddReportEntry(EntryName, record).
type Record struct {
	Kernel   string `json:"kernel"`
	Scenario string `json:"scenario"`
	Removal  string `json:"removal"`
	// Offset is the nominal offset: the heatmap column. The verdict's
	// requested_offset differs from it when the suite jitters offsets.
	Offset scenario.Duration `json:"offset"`
	// Anchor is the anchored cut's event ("" timed): Offset is then the
	// delay after its hit, and the column is the cut (Cut).
	Anchor string `json:"anchor,omitempty"`
	Repeat int    `json:"repeat"`
	Seed   int64  `json:"seed"`
	// Expect is "HANG <classification>", "PASS" or "unknown", with the
	// rate rule if there is one.
	Expect string `json:"expect"`
	// Rule is where the expectation came from ("profile bad rule 2").
	Rule string `json:"rule,omitempty"`
	// RateRule: the cell is judged on its hang rate (expect.RateRule).
	RateRule *expect.RateRule `json:"rate_rule,omitempty"`
	// Problem says why the trial did not meet its expectation; NotJudged
	// why it was not judged (its spec was skipped). Both "": met.
	Problem   string           `json:"problem,omitempty"`
	NotJudged string           `json:"not_judged,omitempty"`
	Verdict   scenario.Verdict `json:"verdict"`

	// Filled in by the loaders, not by the suite.
	Spec  string `json:"spec,omitempty"`  // Ginkgo spec text
	State string `json:"state,omitempty"` // Ginkgo spec state (passed, failed, timedout...)
}

// Cut is the record's heatmap column.
func (r Record) Cut() Cut { return Cut{Anchor: r.Anchor, Offset: time.Duration(r.Offset)} }

// Cut is a heatmap column: an offset after T0, or a delay after an
// anchor's hit.
type Cut struct {
	Anchor string
	Offset time.Duration
}

// String is the cut as tables name it (scenario.CutLabel).
func (c Cut) String() string { return scenario.CutLabel(c.Anchor, c.Offset) }

// less orders timed cuts first, by offset, then anchored ones by anchor
// and delay.
func (c Cut) less(d Cut) bool {
	if c.Anchor != d.Anchor {
		return c.Anchor < d.Anchor
	}
	return c.Offset < d.Offset
}

// Judge records the expectation and holds the verdict against it.
func (r *Record) Judge(e expect.Expectation) expect.Judgement {
	r.Expect, r.Rule, r.RateRule = e.String(), "", e.Rate
	if e.Known {
		r.Rule = e.Source
	}
	j := e.Judge(r.Verdict)
	r.Problem, r.NotJudged = "", ""
	switch j.Status {
	case expect.Problem:
		r.Problem = j.Message
	case expect.NotJudged:
		r.NotJudged = j.Message
	}
	return j
}

// UnmarshalJSON decodes a Record around scenario.Params, whose JSON form
// (durations as strings) does not decode back into Params.
func (r *Record) UnmarshalJSON(b []byte) error {
	type plain Record
	var in struct {
		plain
		Verdict json.RawMessage `json:"verdict"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*r = Record(in.plain)
	if len(in.Verdict) > 0 {
		v, err := DecodeVerdict(in.Verdict)
		if err != nil {
			return err
		}
		r.Verdict = v
	}
	return nil
}

// DecodeVerdict reads a verdict.json. Params are read back field by field
// where they parse and otherwise left zero: the report does not need them.
func DecodeVerdict(b []byte) (scenario.Verdict, error) {
	var in struct {
		scenario.Verdict
		Params json.RawMessage `json:"params"` // shadows Verdict.Params
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return scenario.Verdict{}, err
	}
	v := in.Verdict
	var p struct {
		Offset string
		CPUs   int
	}
	if json.Unmarshal(in.Params, &p) == nil {
		v.Params.Offset, _ = time.ParseDuration(p.Offset)
		v.Params.CPUs = p.CPUs
	}
	return v, nil
}
