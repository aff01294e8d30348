package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

// suiteReport is the suite's kind of Ginkgo report: the records attached
// the way the suite attaches them (AddReportEntry), a not-judged trial's
// spec skipped with its reason, a spec that timed out before recording
// anything, one that the label filter skipped, and the ReportAfterSuite
// node with the cells' rates.
func suiteReport(recs []Record) types.Report {
	var specs types.SpecReports
	specs = append(specs, types.SpecReport{
		LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, State: types.SpecStatePassed,
		ReportEntries: types.ReportEntries{{Name: "yank.seed", Value: types.WrapEntryValue(int64(7))}},
	})
	for _, r := range recs {
		state, failure := types.SpecStatePassed, types.Failure{}
		switch {
		case r.Problem != "":
			state, failure = types.SpecStateFailed, types.Failure{Message: r.Problem, Location: types.NewCodeLocation(0)}
		case r.NotJudged != "":
			state, failure = types.SpecStateSkipped, types.Failure{Message: r.NotJudged, Location: types.NewCodeLocation(0)}
		}
		specs = append(specs, types.SpecReport{
			LeafNodeType: types.NodeTypeIt, LeafNodeText: fmt.Sprintf("%s %s @%s #%d", r.Kernel, r.Scenario, r.Offset, r.Repeat),
			State: state, Failure: failure,
			ReportEntries: types.ReportEntries{
				{Name: EntryName, Value: types.WrapEntryValue(r)},
				{Name: "artifacts", Value: types.WrapEntryValue(r.Verdict.Artifacts)},
			},
		})
	}
	specs = append(specs, types.SpecReport{
		LeafNodeType: types.NodeTypeIt, LeafNodeText: "stock graceful-io @2s #1", State: types.SpecStateTimedout,
		LeafNodeLabels: []string{"kernel:stock", "scenario:graceful-io", "removal:graceful", "offset:2s"},
		Failure:        types.Failure{Message: "A spec timeout occurred\nmore"},
	}, types.SpecReport{
		LeafNodeType: types.NodeTypeIt, LeafNodeText: "rfc-v3 graceful-io @2s #1", State: types.SpecStateSkipped,
		LeafNodeLabels: []string{"kernel:rfc-v3", "scenario:graceful-io"},
	})
	after := types.SpecReport{LeafNodeType: types.NodeTypeReportAfterSuite, LeafNodeText: "yank hang rates", State: types.SpecStatePassed}
	for _, c := range Rates(recs) {
		after.ReportEntries = append(after.ReportEntries, types.ReportEntry{Name: RateEntryName, Value: types.WrapEntryValue(c)})
		if c.Failed() {
			after.State, after.Failure = types.SpecStateFailed, types.Failure{Message: c.String(), Location: types.NewCodeLocation(0)}
		}
	}
	specs = append(specs, after)
	return types.Report{SuiteDescription: "hotunplug", SpecReports: specs}
}

// ginkgoReport writes suiteReport as --json-report does.
func ginkgoReport(t *testing.T, recs []Record) string {
	b, err := json.Marshal([]types.Report{suiteReport(recs)})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadGinkgo(t *testing.T) {
	recs := matrixRecords(t, "")
	in, err := Load(ginkgoReport(t, recs))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Records) != len(recs)+1 {
		t.Fatalf("%d records, want %d (filtered-out spec left out, timed-out one kept)", len(in.Records), len(recs)+1)
	}
	if len(in.Seeds) != 1 || in.Seeds[0] != 7 {
		t.Errorf("seeds %v", in.Seeds)
	}
	first := in.Records[0]
	if first.Kernel != "stock" || first.Verdict.Outcome != scenario.Hang || first.Verdict.StuckTask == nil ||
		len(first.Verdict.StuckTask.Stack) != 4 || time.Duration(first.Verdict.AchievedOffset) != time.Second+4*time.Millisecond {
		t.Errorf("round trip lost data: %+v", first)
	}
	if first.Verdict.Params.Offset != time.Second {
		t.Errorf("params offset %s", first.Verdict.Params.Offset)
	}
	last := in.Records[len(in.Records)-1]
	if last.Scenario != "graceful-io" || last.Verdict.Outcome != "" || last.State != "timedout" ||
		last.Problem != "timedout: A spec timeout occurred" || time.Duration(last.Offset) != 2*time.Second {
		t.Errorf("timed-out spec: %+v", last)
	}
	// The skipped (not judged) trials are there, as such.
	skipped := 0
	for _, r := range in.Records {
		if r.State == "skipped" {
			skipped++
			if !strings.HasPrefix(r.NotJudged, "not tested: the trigger had already finished") || r.Problem != "" || r.Verdict.Outcome != scenario.Missed {
				t.Errorf("skipped trial %s: %+v", r.Spec, r)
			}
		}
	}
	if skipped != 4 {
		t.Errorf("%d skipped trials, want the 4 MISSED ones", skipped)
	}
	m := Build(in, t.TempDir())
	if c := m.Cell("graceful-io", "stock", 2*time.Second); c == nil || c.Count() != "not tested" || c.Other() != "1 no verdict" || c.Problems != 1 {
		t.Errorf("timed-out cell: %+v", c)
	}
	if c := m.Cell("surprise-io", "rfc-v3", 2*time.Second); c == nil || !c.Failed() || c.RateRule == nil || *c.RateRule != (expect.RateRule{MinRate: 0.5, MinTrials: 3}) {
		t.Errorf("the rate rule did not survive the JSON report: %+v", c)
	}
}

// TestFromLiveReport: in a ReportAfterSuite, entries of this process hold
// only their Go values (AsJSON is empty) and those of other processes only
// JSON; both are read.
func TestFromLiveReport(t *testing.T) {
	recs := matrixRecords(t, "")
	live := suiteReport(recs)
	b, err := json.Marshal(live.SpecReports[len(recs)/2:])
	if err != nil {
		t.Fatal(err)
	}
	var remote types.SpecReports
	if err := json.Unmarshal(b, &remote); err != nil {
		t.Fatal(err)
	}
	live.SpecReports = append(live.SpecReports[:len(recs)/2], remote...)
	in, err := FromReports([]types.Report{live})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Records) != len(recs)+1 || len(in.Seeds) != 1 {
		t.Fatalf("%d records, seeds %v", len(in.Records), in.Seeds)
	}
	for i, r := range recs {
		if got := in.Records[i]; got.Kernel != r.Kernel || got.Verdict.Outcome != r.Verdict.Outcome || got.NotJudged != r.NotJudged || got.Expect != r.Expect {
			t.Errorf("record %d: %+v, want %+v", i, got, r)
		}
	}
}

func TestLoadVerdicts(t *testing.T) {
	root := t.TempDir()
	verdict(t, "stock", "unbind-race", 2*time.Second, scenario.Hang, filepath.Join(root, "stock", "unbind-race", "2s-r1"))
	verdict(t, "stock", "unbind-race", 2*time.Second, scenario.Pass, filepath.Join(root, "stock", "unbind-race", "2s-r2"))
	// A jittered trial: the dir name carries the nominal offset.
	verdict(t, "stock", "unbind-race", 2030*time.Millisecond, scenario.Hang, filepath.Join(root, "stock", "unbind-race", "2s-r3"))
	verdict(t, "stock", "unbind-race", 2*time.Second, scenario.Missed, filepath.Join(root, "stock", "unbind-race", "2s-r4"))
	verdict(t, "mine", "surprise-idle", 0, scenario.InfraError, filepath.Join(root, "mine", "surprise-idle", "0s-r1"))
	verdict(t, "mine", "surprise-idle", 0, scenario.Pass, filepath.Join(root, "mine", "surprise-idle", "0s-r2"))
	in, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	m := Build(in, root)
	c := m.Cell("unbind-race", "stock", 2*time.Second)
	if c == nil || c.Count() != "2/3" || c.Other() != "1 missed" || c.Problems != 1 || c.NotJudged != 1 {
		t.Fatalf("stock cell: %+v", c)
	}
	for _, i := range c.Trials {
		tr := m.Trials[i]
		if tr.Expect != "HANG unbind-del_gendisk" || tr.Rule != "profile bad rule 1" || tr.Removal != "surprise" {
			t.Errorf("trial %d: expect %q (%s) removal %q", tr.Repeat, tr.Expect, tr.Rule, tr.Removal)
		}
		if (tr.Verdict.Outcome == scenario.Pass) != (tr.Problem != "") || (tr.Verdict.Outcome == scenario.Missed) != (tr.NotJudged != "") {
			t.Errorf("trial %d: %s with problem %q, not judged %q", tr.Repeat, tr.Verdict.Outcome, tr.Problem, tr.NotJudged)
		}
	}
	mine := m.Cell("surprise-idle", "mine", 0)
	if mine == nil || mine.Problems != 1 || mine.NotJudged != 1 || m.Trials[mine.Trials[0]].Expect != "unknown" {
		t.Errorf("unknown kernel: its INFRA-ERROR is a problem, its PASS not judged: %+v", mine)
	}
	if tr := m.Trials[mine.Trials[1]]; !strings.Contains(tr.NotJudged, "kernel mine has no expectations") {
		t.Errorf("unknown kernel's PASS: %q", tr.NotJudged)
	}
}

func TestLoadRejectsJunk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(p, []byte(`{"not": "a report"}`), 0o600)
	if _, err := Load(p); err == nil {
		t.Error("junk accepted")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing path accepted")
	}
}
