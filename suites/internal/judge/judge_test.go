package judge_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/internal/judge"
	"github.com/yank-dev/yank/suites/report"
)

// TestFakeSuite runs testdata/fakesuite, a real Ginkgo suite that ends
// its specs with End and judges its cells with Rates, and checks what
// reaches report.json and junit.xml: a skipped (not judged) spec keeps
// its report entries and reads as skipped with the reason, a problem
// fails, a cell below its rate rule fails the ReportAfterSuite node,
// whose entries carry every cell's rate.
func TestFakeSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a Ginkgo suite")
	}
	dir := t.TempDir()
	jsonPath, junitPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "junit.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// -count=1: a cached result would not write the reports.
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "./testdata/fakesuite",
		"-args", "-ginkgo.json-report="+jsonPath, "-ginkgo.junit-report="+junitPath)
	out, err := cmd.CombinedOutput()
	if _, failed := err.(*exec.ExitError); !failed {
		t.Fatalf("the fake suite should fail (a problem and a rate below its rule): %v\n%s", err, out)
	}

	in, err := report.Load(jsonPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	states := map[string]string{}
	for _, r := range in.Records {
		states[r.Spec] = r.State
		if r.Spec == "stock surprise-io @2s #2" && (r.Verdict.Outcome != scenario.Missed ||
			r.NotJudged != "not tested: the trigger had already finished 9ms before the cut") {
			t.Errorf("the skipped trial lost its record: %+v", r)
		}
	}
	want := map[string]string{
		"rfc-v3 surprise-io @2s #1": "passed", "rfc-v3 surprise-io @2s #2": "passed", "rfc-v3 surprise-io @2s #3": "passed",
		"stock surprise-io @2s #1": "passed", "stock surprise-io @2s #2": "skipped",
		"stock surprise-idle @0s #1": "failed", "rfc-v3-virtio surprise-idle @0s #1": "passed",
	}
	for spec, state := range want {
		if states[spec] != state {
			t.Errorf("%s: %q, want %q (all: %v)", spec, states[spec], state, states)
		}
	}

	// report.json: the ReportAfterSuite node failed, with the rates.
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var reports []types.Report
	if err := json.Unmarshal(b, &reports); err != nil {
		t.Fatal(err)
	}
	var node *types.SpecReport
	for i, sr := range reports[0].SpecReports {
		if sr.LeafNodeType == types.NodeTypeReportAfterSuite && sr.LeafNodeText == judge.RatesNode {
			node = &reports[0].SpecReports[i]
		}
	}
	if node == nil {
		t.Fatalf("no ReportAfterSuite %q in report.json", judge.RatesNode)
	}
	if node.State != types.SpecStateFailed || !strings.Contains(node.Failure.Message, "rfc-v3 surprise-io @2s: problem: 1/3 hung (33 %, 95 % CI 6-79 %): below") {
		t.Errorf("rates node: %s %q", node.State, node.Failure.Message)
	}
	rates := map[string]report.CellRate{}
	for _, e := range node.ReportEntries {
		if e.Name == report.RateEntryName {
			var c report.CellRate
			if err := json.Unmarshal([]byte(e.Value.AsJSON), &c); err != nil {
				t.Fatal(err)
			}
			rates[c.Name()] = c
		}
	}
	if c := rates["stock surprise-io @2s"]; len(rates) != 4 || c.Judgement == nil || c.Judgement.Status != "not judged" || c.Missed != 1 {
		t.Errorf("rates in report.json: %+v", rates)
	}

	// junit.xml, read with Ginkgo's own types (they hold the properties).
	b, err = os.ReadFile(junitPath)
	if err != nil {
		t.Fatal(err)
	}
	var x reporters.JUnitTestSuites
	if err := xml.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	props := func(tc reporters.JUnitTestCase) map[string]int {
		n := map[string]int{}
		if tc.Properties != nil {
			for _, p := range tc.Properties.Properties {
				n[p.Name]++
			}
		}
		return n
	}
	var sawSkip, sawRates bool
	for _, tc := range x.TestSuites[0].TestCases {
		switch {
		case strings.Contains(tc.Name, "stock surprise-io @2s #2"):
			sawSkip = true
			if tc.Status != "skipped" || tc.Skipped == nil || tc.Skipped.Message != "skipped - not tested: the trigger had already finished 9ms before the cut" ||
				props(tc)[report.EntryName] != 1 {
				t.Errorf("not-judged test case: %+v", tc)
			}
		case tc.Name == "[ReportAfterSuite] "+judge.RatesNode:
			sawRates = true
			if tc.Failure == nil || props(tc)[report.RateEntryName] != 4 || props(tc)["hang rates"] != 1 {
				t.Errorf("rates test case: %+v", tc)
			}
		}
	}
	if !sawSkip || !sawRates || x.TestSuites[0].Skipped != 1 || x.TestSuites[0].Failures != 2 {
		t.Errorf("junit: skip case %v, rates case %v, skipped %d, failures %d", sawSkip, sawRates, x.TestSuites[0].Skipped, x.TestSuites[0].Failures)
	}
}
