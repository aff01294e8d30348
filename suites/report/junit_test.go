package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joshdk/go-junit"
	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"
)

// TestJUnitParses writes the suite's kind of report through Ginkgo's own
// JUnit generator (what --junit-report uses) and reads it back with a
// JUnit parser: every trial is a test case, failures carry the trial's
// problem, timeouts count as failures.
func TestJUnitParses(t *testing.T) {
	b, err := os.ReadFile(ginkgoReport(t, matrixRecords(t, "")))
	if err != nil {
		t.Fatal(err)
	}
	var reports []types.Report
	if err := json.Unmarshal(b, &reports); err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	r.SuiteSucceeded = false
	for i := range r.SpecReports {
		sr := &r.SpecReports[i]
		if sr.State == types.SpecStateFailed {
			var rec Record
			for _, e := range sr.ReportEntries {
				if e.Name == EntryName {
					json.Unmarshal([]byte(e.Value.AsJSON), &rec)
				}
			}
			sr.Failure = types.Failure{Message: rec.Problem, Location: types.NewCodeLocation(0)}
		}
	}
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
	// 26 trials + the timed-out one + the skipped one + the before-suite node.
	if s.Totals.Tests != 29 || s.Totals.Failed+s.Totals.Error != 4 || s.Totals.Skipped != 1 {
		t.Errorf("totals %+v", s.Totals)
	}
	found := false
	for _, tc := range s.Tests {
		if tc.Status == junit.StatusFailed && tc.Error != nil && strings.Contains(tc.Error.Error(), "expected HANG unbind-del_gendisk, got PASS") {
			found = true
		}
	}
	if !found {
		t.Error("no failed test case carries the trial's problem")
	}
}
