package report

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

func TestBuildCells(t *testing.T) {
	root := t.TempDir()
	m := Build(Input{Records: matrixRecords(t, filepath.Join(root, "artifacts")), Seeds: []int64{7}}, root)

	if m.Total != 37 || m.Problems != 3 || m.NotJudged != 4 {
		t.Errorf("total %d, problems %d, not judged %d; want 37, 3, 4", m.Total, m.Problems, m.NotJudged)
	}
	if m.Totals[scenario.Hang] != 12 || m.Totals[scenario.Pass] != 20 || m.Totals[scenario.Missed] != 4 || m.Totals[scenario.InfraError] != 1 {
		t.Errorf("totals %v", m.Totals)
	}
	for _, tc := range []struct {
		sc, kernel string
		offset     time.Duration
		count      string
		rate       float64
		problems   int
		other      string
		text       string
		judged     expect.Status // of the rate rule, "" without one
	}{
		{"unbind-race", "stock", time.Second, "3/5", 0.6, 2, "", "3/5 hung (60 %, 95 % CI 23-88 %)", ""},
		{"unbind-race", "stock", 2 * time.Second, "5/5", 1, 0, "", "5/5 hung (100 %, 95 % CI 57-100 %)", ""},
		{"unbind-race", "stock", 4 * time.Second, "not tested", 0, 0, "2 missed", "nothing tested, 2 missed", ""},
		{"unbind-race", "rfc-v3-virtio", time.Second, "0/4", 0, 1, "1 INFRA-ERROR", "0/4 hung (0 %, 95 % CI 0-49 %)", ""},
		{"surprise-idle", "stock", 0, "0/3", 0, 0, "", "0/3 hung", ""},
		{"surprise-io", "stock", 2 * time.Second, "2/3", 2.0 / 3, 0, "1 missed", "2/3 hung (67 %, 95 % CI 21-94 %), 1 missed", expect.Met},
		{"surprise-io", "rfc-v3", 2 * time.Second, "1/3", 1.0 / 3, 0, "", "1/3 hung (33 %, 95 % CI 6-79 %)", expect.Problem},
		{"surprise-io", "rfc-v3", time.Second, "1/1", 1, 0, "1 missed", "1/1 hung", expect.NotJudged},
	} {
		c := m.Cell(tc.sc, tc.kernel, tc.offset)
		if c == nil {
			t.Fatalf("no cell %s %s %s", tc.sc, tc.kernel, tc.offset)
		}
		if c.Count() != tc.count || c.Value() != tc.rate || c.Problems != tc.problems || c.Other() != tc.other || !strings.HasPrefix(c.Text, tc.text) {
			t.Errorf("%s: %s rate %.2f problems %d other %q text %q; want %s %.2f %d %q %q",
				c.Name(), c.Count(), c.Value(), c.Problems, c.Other(), c.Text, tc.count, tc.rate, tc.problems, tc.other, tc.text)
		}
		var judged expect.Status
		if c.Judgement != nil {
			judged = c.Judgement.Status
		}
		if judged != tc.judged || c.Failed() != (tc.judged == expect.Problem) || c.Unexpected() != (tc.problems > 0 || tc.judged == expect.Problem) {
			t.Errorf("%s: rate rule %q (%+v), want %q", c.Name(), judged, c.Judgement, tc.judged)
		}
		if len(c.Trials) != c.Total {
			t.Errorf("%s: %d trial links for %d trials", c.Ref, len(c.Trials), c.Total)
		}
		for _, i := range c.Trials {
			if tr := m.Trials[i]; tr.Kernel != tc.kernel || tr.Scenario != tc.sc || time.Duration(tr.Offset) != tc.offset {
				t.Errorf("cell %s links trial %s", c.Ref, tr.ID)
			}
		}
	}
	// The failed rate rule names the cell, the rate with its interval and the rule.
	bad := m.RateProblems()
	if len(bad) != 1 || bad[0].String() != "rfc-v3 surprise-io @2s: problem: 1/3 hung (33 %, 95 % CI 6-79 %): below the rate rule's 50 %; "+
		"expected HANG pciehp-del_gendisk in >= 50 % of >= 3 tested trials (profile bad rule 2)" {
		t.Errorf("rate problems %v", bad)
	}
	if c := m.Cell("surprise-idle", "stock", time.Second); c != nil {
		t.Errorf("phantom cell %+v", c)
	}
	if len(m.Rates) != 10 || m.Rates[0].Name() != "rfc-v3-virtio surprise-idle @0s" {
		t.Errorf("%d rates, first %v", len(m.Rates), m.Rates)
	}
	// Heatmaps come sorted: scenarios, kernels, offsets.
	var names []string
	for _, h := range m.Heatmaps {
		names = append(names, h.Scenario)
	}
	if strings.Join(names, ",") != "surprise-idle,surprise-io,unbind-race" {
		t.Errorf("heatmaps %v", names)
	}
	h := m.Heatmaps[2]
	if !slices.Equal(h.Cuts, []Cut{{Offset: time.Second}, {Offset: 2 * time.Second}, {Offset: 4 * time.Second}}) || h.Rows[0].Kernel != "rfc-v3-virtio" || h.Removal != "surprise" {
		t.Errorf("unbind-race heatmap: cuts %v, first row %s", h.Cuts, h.Rows[0].Kernel)
	}
}

// TestRatesJudgeEveryTrialOfACell: a cell's rate counts its MISSED trials
// apart and only the trials' outcomes (not their order or repeat numbers).
func TestRatesJudgeEveryTrialOfACell(t *testing.T) {
	rule := &expect.RateRule{MinRate: 0.5, MinTrials: 3}
	rec := func(o scenario.Outcome) Record {
		return Record{Kernel: "k", Scenario: "surprise-io", Offset: scenario.Duration(2 * time.Second), RateRule: rule,
			Expect: "HANG x", Rule: "test", Verdict: scenario.Verdict{Outcome: o}}
	}
	for _, tc := range []struct {
		outcomes []scenario.Outcome
		want     expect.Status
	}{
		{[]scenario.Outcome{scenario.Hang, scenario.Pass, scenario.Pass}, expect.Problem},
		{[]scenario.Outcome{scenario.Pass, scenario.Hang, scenario.Missed, scenario.Hang}, expect.Met},
		{[]scenario.Outcome{scenario.Pass, scenario.Missed, scenario.Missed, scenario.InfraError}, expect.NotJudged},
	} {
		var recs []Record
		for _, o := range tc.outcomes {
			recs = append(recs, rec(o))
		}
		rs := Rates(recs)
		if len(rs) != 1 || rs[0].Judgement == nil || rs[0].Judgement.Status != tc.want {
			t.Errorf("%v: %v, want one cell %s", tc.outcomes, rs, tc.want)
		}
	}
	exact := rec(scenario.Pass)
	exact.RateRule = nil
	if rs := Rates([]Record{exact}); len(rs) != 1 || rs[0].Judgement != nil || rs[0].String() != "k surprise-io @2s: 0/1 hung (0 %, 95 % CI 0-79 %)" {
		t.Errorf("exact rule: %v", rs)
	}
}

func TestLinksRelativeWhenBelowTheReport(t *testing.T) {
	root := t.TempDir()
	recs := matrixRecords(t, filepath.Join(root, "artifacts"))
	m := Build(Input{Records: recs}, root)
	got := m.Trials[0].Links
	if len(got) != 3 || got[0].Name != "verdict.json" || strings.HasPrefix(got[0].Href, "file:") || !strings.HasPrefix(got[0].Href, "artifacts/") {
		t.Errorf("links below the report: %+v", got)
	}
	m = Build(Input{Records: recs}, filepath.Join(root, "elsewhere"))
	if got := m.Trials[0].Links; !strings.HasPrefix(got[0].Href, "file:///") {
		t.Errorf("links outside the report: %+v", got)
	}
}

func TestEmptyCellsAreNil(t *testing.T) {
	recs := []Record{
		{Kernel: "a", Scenario: "unbind-race", Offset: scenario.Duration(time.Second), Verdict: scenario.Verdict{Outcome: scenario.Hang}},
		{Kernel: "b", Scenario: "unbind-race", Offset: scenario.Duration(2 * time.Second), Verdict: scenario.Verdict{Outcome: scenario.Pass}},
	}
	m := Build(Input{Records: recs}, t.TempDir())
	h := m.Heatmaps[0]
	if len(h.Rows) != 2 || h.Rows[0].Cells[1] != nil || h.Rows[1].Cells[0] != nil || h.Rows[0].Cells[0].Count() != "1/1" || h.Rows[1].Cells[1].Count() != "0/1" {
		t.Errorf("rows %+v", h.Rows)
	}
}

func TestTimings(t *testing.T) {
	recs := matrixRecords(t, "")
	recs[0].Verdict.AchievedOffset += scenario.Duration(40 * time.Millisecond)
	ts := Timings(recs)
	var rows []string
	for _, r := range ts {
		rows = append(rows, r.Scenario+" "+string(r.Outcome))
	}
	want := "surprise-idle PASS,surprise-io HANG,surprise-io MISSED,surprise-io PASS,unbind-race HANG,unbind-race INFRA-ERROR,unbind-race MISSED,unbind-race PASS"
	if strings.Join(rows, ",") != want {
		t.Fatalf("timings %v", rows)
	}
	if ts[4].N != 8 || ts[4].OffsetErrorMax != 44*time.Millisecond || ts[4].OffsetErrorMean != 9*time.Millisecond || ts[4].DetectMean != 3500*time.Millisecond {
		t.Errorf("unbind-race HANG timing %+v", ts[4])
	}
	if ts[6].N != 2 {
		t.Errorf("unbind-race MISSED timing %+v", ts[6])
	}
}

// An anchored cut is its own column, named as the tables name it, apart
// from a timed cut of the same delay; the trial dir names it too.
func TestAnchoredCutColumns(t *testing.T) {
	v := scenario.Verdict{Kernel: "stock", Scenario: "unbind-race", Outcome: scenario.Hang,
		Anchor: &scenario.AnchorHit{Spec: "del_gendisk", Symbol: "del_gendisk"}}
	anchored := recordFromVerdict(v, "del_gendisk+0s-r2")
	if anchored.Anchor != "del_gendisk" || anchored.Offset != 0 || anchored.Repeat != 2 || anchored.Expect != "HANG unbind-del_gendisk" {
		t.Fatalf("anchored record: %+v", anchored)
	}
	timed := recordFromVerdict(scenario.Verdict{Kernel: "stock", Scenario: "unbind-race", Outcome: scenario.Hang}, "0s-r1")
	m := Build(Input{Records: []Record{anchored, timed}}, "")
	if len(m.Heatmaps) != 1 {
		t.Fatalf("%d heatmaps", len(m.Heatmaps))
	}
	var cols []string
	for _, c := range m.Heatmaps[0].Cuts {
		cols = append(cols, c.String())
	}
	if strings.Join(cols, " ") != "0s del_gendisk+0s" {
		t.Errorf("columns %v, want the timed 0s, then del_gendisk+0s", cols)
	}
	c := m.CellAt("unbind-race", "stock", Cut{Anchor: "del_gendisk"})
	if c == nil || c.Total != 1 || c.Name() != "stock unbind-race @del_gendisk+0s" {
		t.Errorf("anchored cell: %+v", c)
	}
}
