package report

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

// CellRate is one cell's hang rate: HANGs over tested trials (PASS, HANG,
// CRASH) with the Wilson interval, MISSED and INFRA-ERROR apart, and the
// judgement of the cell's rate rule if it has one. The suite attaches one
// per cell to its ReportAfterSuite node (RateEntryName).
type CellRate struct {
	Kernel   string            `json:"kernel"`
	Scenario string            `json:"scenario"`
	Offset   scenario.Duration `json:"offset"` // nominal (the delay after Anchor's hit for an anchored cut)
	Anchor   string            `json:"anchor,omitempty"`
	scenario.Rate
	Text     string           `json:"text"` // Rate.String()
	Expect   string           `json:"expect,omitempty"`
	Rule     string           `json:"rule,omitempty"`
	RateRule *expect.RateRule `json:"rate_rule,omitempty"`
	// Judgement of the rate rule; nil without one (each trial was
	// judged on its own).
	Judgement *expect.Judgement `json:"judgement,omitempty"`
}

// Name is "<kernel> <scenario> @<cut>" (the cut as scenario.CutLabel
// writes it: "2s", "del_gendisk+0s").
func (c CellRate) Name() string {
	return fmt.Sprintf("%s %s @%s", c.Kernel, c.Scenario, scenario.CutLabel(c.Anchor, time.Duration(c.Offset)))
}

// CutLabel is the cell's cut as tables name it.
func (c CellRate) CutLabel() string { return scenario.CutLabel(c.Anchor, time.Duration(c.Offset)) }

// String is one line: the cell, its rate and, under a rate rule, the
// judgement.
func (c CellRate) String() string {
	if c.Judgement == nil {
		return c.Name() + ": " + c.Text
	}
	return fmt.Sprintf("%s: %s: %s", c.Name(), c.Judgement.Status, c.Judgement.Message)
}

// Failed reports whether the cell's rate rule was not met.
func (c CellRate) Failed() bool { return c.Judgement != nil && c.Judgement.Status == expect.Problem }

// Cell is one kernel at one offset of one scenario in a heatmap.
type Cell struct {
	CellRate
	Total     int
	Problems  int // trials that did not meet their expectation
	NotJudged int // trials that said nothing either way (spec skipped)
	Outcomes  map[scenario.Outcome]int
	Trials    []int  // indexes into Model.Trials
	Ref       string // the cell's id in the HTML page
}

// Count is the cell's label: hangs over tested trials ("2/3"), or "not
// tested" when every trial was MISSED or never judged.
func (c *Cell) Count() string {
	if c.Tested == 0 {
		return "not tested"
	}
	return fmt.Sprintf("%d/%d", c.Hangs, c.Tested)
}

// Other lists the outcomes besides HANG and PASS ("1 missed, 1 INFRA-ERROR").
func (c *Cell) Other() string {
	var s []string
	for _, o := range []scenario.Outcome{scenario.Recovered, scenario.Missed, scenario.Unreached, scenario.Crash, scenario.InfraError, ""} {
		if n := c.Outcomes[o]; n > 0 {
			name := string(o)
			switch o {
			case scenario.Recovered:
				name = "recovered"
			case scenario.Missed:
				name = "missed"
			case scenario.Unreached:
				name = "unreached"
			case "":
				name = "no verdict"
			}
			s = append(s, fmt.Sprintf("%d %s", n, name))
		}
	}
	return strings.Join(s, ", ")
}

// Unexpected reports whether a trial or the cell's rate missed its
// expectation.
func (c *Cell) Unexpected() bool { return c.Problems > 0 || c.Failed() }

// judge fills the rate and the expectation (the cell's trials share it)
// and, if a trial carries a rate rule, judges the rate.
func (c *Cell) judge(trials []Trial) {
	var outcomes []scenario.Outcome
	for _, i := range c.Trials {
		outcomes = append(outcomes, trials[i].Verdict.Outcome)
	}
	c.Rate = scenario.RateOf(outcomes)
	c.Text = c.Rate.String()
	if len(c.Trials) > 0 {
		c.Expect, c.Rule = trials[c.Trials[0]].Expect, trials[c.Trials[0]].Rule
	}
	for _, i := range c.Trials {
		if t := trials[i]; t.RateRule != nil {
			c.Expect, c.Rule, c.RateRule = t.Expect, t.Rule, t.RateRule
			j := t.RateRule.Judge(c.Rate)
			j.Message = fmt.Sprintf("%s; expected %s (%s)", j.Message, c.Expect, c.Rule)
			c.Judgement = &j
			return
		}
	}
}

// Heatmap is one scenario: kernels down, cuts (offsets, or delays after
// an anchor) across.
type Heatmap struct {
	Scenario    string
	Removal     string
	Description string
	Cuts        []Cut
	Rows        []Row
}

// Row is one kernel's cells, one per cut (nil where it has no trials).
type Row struct {
	Kernel string
	Cells  []*Cell
}

// Link is an evidence file of a trial.
type Link struct{ Name, Href string }

// Trial is a Record with what the page shows about it.
type Trial struct {
	Record
	ID    string
	Links []Link
}

// Model is everything the HTML page shows.
type Model struct {
	Title     string
	Generated time.Time
	Seeds     []int64
	Sources   []string
	Totals    map[scenario.Outcome]int
	Total     int
	Problems  int // trials that missed their expectation
	NotJudged int // trials not judged (MISSED, no rule)
	Heatmaps  []Heatmap
	Trials    []Trial
	Timings   []Timing
	Rates     []CellRate // every cell, in heatmap order
}

// RateProblems are the cells whose rate rule was not met.
func (m Model) RateProblems() []CellRate {
	var out []CellRate
	for _, c := range m.Rates {
		if c.Failed() {
			out = append(out, c)
		}
	}
	return out
}

// Rates are the records' per-cell hang rates, judged where a rate rule
// applies: what the report shows and what the suite fails on.
func Rates(recs []Record) []CellRate { return Build(Input{Records: recs}, "").Rates }

// evidenceFiles are the artifacts a trial may have, in link order.
var evidenceFiles = []string{"verdict.json", "timeline.log", "console.log", "stacks.txt", "events.jsonl", "host.log", "qemu.log"}

// Build groups the records into heatmaps. outDir is where the HTML will
// be written: links to evidence are relative to it when they can be.
func Build(in Input, outDir string) Model {
	m := Model{Title: "yank matrix", Generated: time.Now().UTC(), Seeds: in.Seeds, Sources: in.Sources, Totals: map[scenario.Outcome]int{}}
	recs := slices.Clone(in.Records)
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		if a.Kernel != b.Kernel {
			return a.Kernel < b.Kernel
		}
		if a.Cut() != b.Cut() {
			return a.Cut().less(b.Cut())
		}
		return a.Repeat < b.Repeat
	})
	byScenario := map[string]*Heatmap{}
	cells := map[string]*Cell{}
	var order []string
	for i, r := range recs {
		t := Trial{Record: r, ID: fmt.Sprintf("t%d", i+1), Links: links(r.Verdict.Artifacts, outDir)}
		m.Trials = append(m.Trials, t)
		m.Total++
		m.Totals[r.Verdict.Outcome]++
		if r.Problem != "" {
			m.Problems++
		}
		if r.NotJudged != "" {
			m.NotJudged++
		}
		h := byScenario[r.Scenario]
		if h == nil {
			h = &Heatmap{Scenario: r.Scenario, Removal: r.Removal}
			if sc, err := scenario.Lookup(r.Scenario); err == nil {
				h.Description = sc.Description
			}
			byScenario[r.Scenario] = h
			order = append(order, r.Scenario)
		}
		cut := r.Cut()
		if !slices.Contains(h.Cuts, cut) {
			h.Cuts = append(h.Cuts, cut)
		}
		key := r.Scenario + "|" + r.Kernel + "|" + cut.String()
		c := cells[key]
		if c == nil {
			c = &Cell{CellRate: CellRate{Kernel: r.Kernel, Scenario: r.Scenario, Offset: r.Offset, Anchor: r.Anchor}, Outcomes: map[scenario.Outcome]int{},
				Ref: "cell-" + anchorSafe(r.Scenario+"-"+r.Kernel+"-"+cut.String())}
			cells[key] = c
		}
		c.Total++
		c.Outcomes[r.Verdict.Outcome]++
		if r.Problem != "" {
			c.Problems++
		}
		if r.NotJudged != "" {
			c.NotJudged++
		}
		c.Trials = append(c.Trials, i)
	}
	for _, name := range order {
		h := byScenario[name]
		slices.SortFunc(h.Cuts, func(a, b Cut) int {
			if a == b {
				return 0
			}
			if a.less(b) {
				return -1
			}
			return 1
		})
		var kernels []string
		for _, t := range m.Trials {
			if t.Scenario == name && !slices.Contains(kernels, t.Kernel) {
				kernels = append(kernels, t.Kernel)
			}
		}
		for _, k := range kernels {
			row := Row{Kernel: k}
			for _, cut := range h.Cuts {
				c := cells[name+"|"+k+"|"+cut.String()]
				if c != nil {
					c.judge(m.Trials)
					m.Rates = append(m.Rates, c.CellRate)
				}
				row.Cells = append(row.Cells, c)
			}
			h.Rows = append(h.Rows, row)
		}
		m.Heatmaps = append(m.Heatmaps, *h)
	}
	m.Timings = Timings(recs)
	return m
}

// Cell finds the heatmap cell of a timed cut (nil if there is none); for
// tests and tools.
func (m Model) Cell(sc, kernel string, offset time.Duration) *Cell {
	return m.CellAt(sc, kernel, Cut{Offset: offset})
}

// CellAt finds the heatmap cell of a cut (nil if there is none).
func (m Model) CellAt(sc, kernel string, cut Cut) *Cell {
	for _, h := range m.Heatmaps {
		if h.Scenario != sc {
			continue
		}
		for _, r := range h.Rows {
			if r.Kernel != kernel {
				continue
			}
			for i, c := range h.Cuts {
				if c == cut {
					return r.Cells[i]
				}
			}
		}
	}
	return nil
}

// links lists a trial's evidence files that exist, relative to outDir
// when the artifacts are below it, absolute file:// URLs otherwise.
func links(dir, outDir string) []Link {
	if dir == "" {
		return nil
	}
	var out []Link
	for _, f := range evidenceFiles {
		p := filepath.Join(dir, f)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		href := "file://" + filepath.ToSlash(p)
		if abs, err := filepath.Abs(p); err == nil {
			href = "file://" + filepath.ToSlash(abs)
			if outAbs, err := filepath.Abs(outDir); err == nil {
				if rel, err := filepath.Rel(outAbs, abs); err == nil && !strings.HasPrefix(rel, "..") {
					href = filepath.ToSlash(rel)
				}
			}
		}
		out = append(out, Link{f, href})
	}
	return out
}

func anchorSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, s)
}
