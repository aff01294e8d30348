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
)

// Cell is one kernel at one offset of one scenario: how many of its
// trials hung, out of how many.
type Cell struct {
	Kernel   string
	Offset   time.Duration
	Hangs    int
	Total    int
	Problems int // trials that did not meet their expectation
	Outcomes map[scenario.Outcome]int
	Trials   []int // indexes into Model.Trials
	Anchor   string
}

// Count is the cell's label: hangs over trials, "3/5".
func (c *Cell) Count() string { return fmt.Sprintf("%d/%d", c.Hangs, c.Total) }

// Rate is the hang rate in [0,1].
func (c *Cell) Rate() float64 {
	if c.Total == 0 {
		return 0
	}
	return float64(c.Hangs) / float64(c.Total)
}

// Other lists the outcomes that are neither HANG nor PASS ("1 INFRA-ERROR").
func (c *Cell) Other() string {
	var s []string
	for _, o := range []scenario.Outcome{scenario.Crash, scenario.InfraError, ""} {
		if n := c.Outcomes[o]; n > 0 {
			name := string(o)
			if o == "" {
				name = "no verdict"
			}
			s = append(s, fmt.Sprintf("%d %s", n, name))
		}
	}
	return strings.Join(s, ", ")
}

// Heatmap is one scenario: kernels down, offsets across.
type Heatmap struct {
	Scenario    string
	Removal     string
	Description string
	Offsets     []time.Duration
	Rows        []Row
}

// Row is one kernel's cells, one per offset (nil where it has no trials).
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
	Problems  int
	Heatmaps  []Heatmap
	Trials    []Trial
	Timings   []Timing
}

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
		if a.Offset != b.Offset {
			return a.Offset < b.Offset
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
		h := byScenario[r.Scenario]
		if h == nil {
			h = &Heatmap{Scenario: r.Scenario, Removal: r.Removal}
			if sc, err := scenario.Lookup(r.Scenario); err == nil {
				h.Description = sc.Description
			}
			byScenario[r.Scenario] = h
			order = append(order, r.Scenario)
		}
		off := time.Duration(r.Offset)
		if !slices.Contains(h.Offsets, off) {
			h.Offsets = append(h.Offsets, off)
		}
		key := r.Scenario + "|" + r.Kernel + "|" + off.String()
		c := cells[key]
		if c == nil {
			c = &Cell{Kernel: r.Kernel, Offset: off, Outcomes: map[scenario.Outcome]int{},
				Anchor: "cell-" + anchorSafe(r.Scenario+"-"+r.Kernel+"-"+off.String())}
			cells[key] = c
		}
		c.Total++
		c.Outcomes[r.Verdict.Outcome]++
		if r.Hung() {
			c.Hangs++
		}
		if r.Problem != "" {
			c.Problems++
		}
		c.Trials = append(c.Trials, i)
	}
	for _, name := range order {
		h := byScenario[name]
		slices.Sort(h.Offsets)
		var kernels []string
		for _, t := range m.Trials {
			if t.Scenario == name && !slices.Contains(kernels, t.Kernel) {
				kernels = append(kernels, t.Kernel)
			}
		}
		for _, k := range kernels {
			row := Row{Kernel: k}
			for _, off := range h.Offsets {
				row.Cells = append(row.Cells, cells[name+"|"+k+"|"+off.String()])
			}
			h.Rows = append(h.Rows, row)
		}
		m.Heatmaps = append(m.Heatmaps, *h)
	}
	m.Timings = Timings(recs)
	return m
}

// Cell finds a heatmap cell (nil if there is none); for tests and tools.
func (m Model) Cell(sc, kernel string, offset time.Duration) *Cell {
	for _, h := range m.Heatmaps {
		if h.Scenario != sc {
			continue
		}
		for _, r := range h.Rows {
			if r.Kernel != kernel {
				continue
			}
			for i, off := range h.Offsets {
				if off == offset {
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
