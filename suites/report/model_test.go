package report

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
)

func TestBuildCells(t *testing.T) {
	root := t.TempDir()
	m := Build(Input{Records: matrixRecords(t, filepath.Join(root, "artifacts")), Seeds: []int64{7}}, root)

	if m.Total != 26 || m.Problems != 3 {
		t.Errorf("total %d, problems %d; want 26, 3", m.Total, m.Problems)
	}
	if m.Totals[scenario.Hang] != 8 || m.Totals[scenario.Pass] != 17 || m.Totals[scenario.InfraError] != 1 {
		t.Errorf("totals %v", m.Totals)
	}
	for _, tc := range []struct {
		sc, kernel string
		offset     time.Duration
		count      string
		rate       float64
		problems   int
		other      string
	}{
		{"unbind-race", "stock", time.Second, "3/5", 0.6, 2, ""},
		{"unbind-race", "stock", 2 * time.Second, "5/5", 1, 0, ""},
		{"unbind-race", "rfc-v3-virtio", time.Second, "0/5", 0, 1, "1 INFRA-ERROR"},
		{"surprise-idle", "stock", 0, "0/3", 0, 0, ""},
	} {
		c := m.Cell(tc.sc, tc.kernel, tc.offset)
		if c == nil {
			t.Fatalf("no cell %s %s %s", tc.sc, tc.kernel, tc.offset)
		}
		if c.Count() != tc.count || c.Rate() != tc.rate || c.Problems != tc.problems || c.Other() != tc.other {
			t.Errorf("%s %s %s: %s rate %.2f problems %d other %q; want %s %.2f %d %q",
				tc.sc, tc.kernel, tc.offset, c.Count(), c.Rate(), c.Problems, c.Other(), tc.count, tc.rate, tc.problems, tc.other)
		}
		if len(c.Trials) != c.Total {
			t.Errorf("%s: %d trial links for %d trials", c.Anchor, len(c.Trials), c.Total)
		}
		for _, i := range c.Trials {
			if tr := m.Trials[i]; tr.Kernel != tc.kernel || tr.Scenario != tc.sc || time.Duration(tr.Offset) != tc.offset {
				t.Errorf("cell %s links trial %s", c.Anchor, tr.ID)
			}
		}
	}
	if c := m.Cell("surprise-idle", "stock", time.Second); c != nil {
		t.Errorf("phantom cell %+v", c)
	}
	// Heatmaps come sorted: scenarios, kernels, offsets.
	var names []string
	for _, h := range m.Heatmaps {
		names = append(names, h.Scenario)
	}
	if strings.Join(names, ",") != "surprise-idle,unbind-race" {
		t.Errorf("heatmaps %v", names)
	}
	h := m.Heatmaps[1]
	if !slices.Equal(h.Offsets, []time.Duration{time.Second, 2 * time.Second}) || h.Rows[0].Kernel != "rfc-v3-virtio" || h.Removal != "surprise" {
		t.Errorf("unbind-race heatmap: offsets %v, first row %s", h.Offsets, h.Rows[0].Kernel)
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
	if len(h.Rows) != 2 || h.Rows[0].Cells[1] != nil || h.Rows[1].Cells[0] != nil || h.Rows[0].Cells[0].Count() != "1/1" {
		t.Errorf("rows %+v", h.Rows)
	}
}

func TestTimings(t *testing.T) {
	recs := matrixRecords(t, "")
	recs[0].Verdict.AchievedOffset += scenario.Duration(40 * time.Millisecond)
	ts := Timings(recs)
	// surprise-idle PASS, unbind-race HANG, INFRA-ERROR, PASS.
	if len(ts) != 4 || ts[1].Scenario != "unbind-race" || ts[1].Outcome != scenario.Hang || ts[1].N != 8 {
		t.Fatalf("timings %+v", ts)
	}
	if ts[1].OffsetErrorMax != 44*time.Millisecond || ts[1].OffsetErrorMean != 9*time.Millisecond || ts[1].DetectMean != 3500*time.Millisecond {
		t.Errorf("HANG timing %+v", ts[1])
	}
}
