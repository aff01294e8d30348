package report

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joshdk/go-junit"
	"github.com/onsi/ginkgo/v2/reporters"
)

// TestJUnitParses writes the suite's kind of report through Ginkgo's own
// JUnit generator (what --junit-report uses) and reads it back with a
// JUnit parser: every trial is a test case, failures carry the trial's
// problem, timeouts count as failures, not-judged trials are skipped with
// their reason, and the ReportAfterSuite node is a test case of its own
// whose properties hold the cells' rates.
func TestJUnitParses(t *testing.T) {
	r := suiteReport(matrixRecords(t, ""))
	r.SuiteSucceeded = false
	p := filepath.Join(t.TempDir(), "junit.xml")
	if err := reporters.GenerateJUnitReport(r, p); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.IngestFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(suites) != 1 {
		t.Fatalf("%d suites", len(suites))
	}
	s := suites[0]
	// 37 trials + the timed-out one + the filtered-out one + the
	// before-suite and after-suite nodes. Failed: 3 trials, the timeout and
	// the rate cell. Skipped: the 4 MISSED trials and the filtered one.
	if s.Totals.Tests != 41 || s.Totals.Failed+s.Totals.Error != 5 || s.Totals.Skipped != 5 {
		t.Errorf("totals %+v", s.Totals)
	}
	var failed, notJudged, rates bool
	for _, tc := range s.Tests {
		switch {
		case tc.Status == junit.StatusFailed && tc.Error != nil && strings.Contains(tc.Error.Error(), "(profile bad rule 1), got PASS"):
			failed = true
		case tc.Status == junit.StatusSkipped && strings.HasPrefix(tc.Message, "skipped - not tested: the trigger had already finished"):
			notJudged = true
		case tc.Name == "[ReportAfterSuite] yank hang rates":
			rates = tc.Status == junit.StatusFailed && strings.Contains(tc.Message, "rfc-v3 surprise-io @2s: problem: 1/3 hung (33 %, 95 % CI 6-79 %)")
		}
	}
	if !failed || !notJudged || !rates {
		t.Errorf("failed trial with its problem %v, skipped not-judged trial %v, failed rates node %v", failed, notJudged, rates)
	}

	// go-junit does not read a test case's <properties>; Ginkgo's types do.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var x reporters.JUnitTestSuites
	if err := xml.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	var cells []CellRate
	skippedWithRecord := 0
	for _, tc := range x.TestSuites[0].TestCases {
		if tc.Properties == nil {
			continue
		}
		for _, prop := range tc.Properties.Properties {
			switch {
			case prop.Name == RateEntryName && strings.HasPrefix(tc.Name, "[ReportAfterSuite]"):
				var c CellRate
				if err := json.Unmarshal([]byte(prop.Value), &c); err != nil {
					t.Fatalf("%s: %v", prop.Value, err)
				}
				cells = append(cells, c)
			case prop.Name == EntryName && tc.Skipped != nil:
				skippedWithRecord++
			}
		}
	}
	if len(cells) != 10 || skippedWithRecord != 4 {
		t.Fatalf("%d %s properties on the ReportAfterSuite case, %d skipped cases with their %s", len(cells), RateEntryName, skippedWithRecord, EntryName)
	}
	for _, c := range cells {
		if c.Name() == "stock surprise-io @2s" && (c.Hangs != 2 || c.Tested != 3 || c.Missed != 1 || c.Judgement == nil || c.Judgement.Status != "met") {
			t.Errorf("rate property lost data: %+v", c)
		}
	}
}
