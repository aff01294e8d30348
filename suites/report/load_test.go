package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/yank-dev/yank/scenario"
)

// ginkgoReport writes a Ginkgo JSON report holding the records the way
// the suite attaches them (AddReportEntry), plus a spec that timed out
// before recording anything and one that the label filter skipped.
func ginkgoReport(t *testing.T, recs []Record) string {
	var specs types.SpecReports
	specs = append(specs, types.SpecReport{
		LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, State: types.SpecStatePassed,
		ReportEntries: types.ReportEntries{{Name: "yank.seed", Value: types.WrapEntryValue(int64(7))}},
	})
	for _, r := range recs {
		state := types.SpecStatePassed
		if r.Problem != "" {
			state = types.SpecStateFailed
		}
		specs = append(specs, types.SpecReport{
			LeafNodeType: types.NodeTypeIt, LeafNodeText: r.Kernel + " " + r.Scenario, State: state,
			ReportEntries: types.ReportEntries{
				{Name: EntryName, Value: types.WrapEntryValue(r)},
				{Name: "artifacts", Value: types.WrapEntryValue(r.Verdict.Artifacts)},
			},
		})
	}
	specs = append(specs, types.SpecReport{
		LeafNodeType: types.NodeTypeIt, LeafNodeText: "stock surprise-io @2s #1", State: types.SpecStateTimedout,
		LeafNodeLabels: []string{"kernel:stock", "scenario:surprise-io", "removal:surprise", "offset:2s"},
		Failure:        types.Failure{Message: "A spec timeout occurred\nmore"},
	}, types.SpecReport{
		LeafNodeType: types.NodeTypeIt, LeafNodeText: "stock graceful-io @2s #1", State: types.SpecStateSkipped,
		LeafNodeLabels: []string{"kernel:stock", "scenario:graceful-io"},
	})
	b, err := json.Marshal([]types.Report{{SuiteDescription: "hotunplug", SpecReports: specs}})
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
		t.Fatalf("%d records, want %d (skipped specs left out, timed-out one kept)", len(in.Records), len(recs)+1)
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
	if last.Scenario != "surprise-io" || last.Verdict.Outcome != "" || last.State != "timedout" ||
		last.Problem != "timedout: A spec timeout occurred" || time.Duration(last.Offset) != 2*time.Second {
		t.Errorf("timed-out spec: %+v", last)
	}
	m := Build(in, t.TempDir())
	if c := m.Cell("surprise-io", "stock", 2*time.Second); c == nil || c.Count() != "0/1" || c.Other() != "1 no verdict" || c.Problems != 1 {
		t.Errorf("timed-out cell: %+v", c)
	}
}

func TestLoadVerdicts(t *testing.T) {
	root := t.TempDir()
	verdict(t, "stock", "unbind-race", 2*time.Second, scenario.Hang, filepath.Join(root, "stock", "unbind-race", "2s-r1"))
	verdict(t, "stock", "unbind-race", 2*time.Second, scenario.Pass, filepath.Join(root, "stock", "unbind-race", "2s-r2"))
	// A jittered trial: the dir name carries the nominal offset.
	verdict(t, "stock", "unbind-race", 2030*time.Millisecond, scenario.Hang, filepath.Join(root, "stock", "unbind-race", "2s-r3"))
	verdict(t, "mine", "surprise-idle", 0, scenario.InfraError, filepath.Join(root, "mine", "surprise-idle", "0s-r1"))
	in, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	m := Build(in, root)
	c := m.Cell("unbind-race", "stock", 2*time.Second)
	if c == nil || c.Count() != "2/3" || c.Problems != 1 {
		t.Fatalf("stock cell: %+v", c)
	}
	for _, i := range c.Trials {
		tr := m.Trials[i]
		if tr.Expect != "HANG unbind-del_gendisk" || tr.Removal != "surprise" {
			t.Errorf("trial %d: expect %q removal %q", tr.Repeat, tr.Expect, tr.Removal)
		}
		if (tr.Verdict.Outcome == scenario.Pass) != (tr.Problem != "") {
			t.Errorf("trial %d: %s with problem %q", tr.Repeat, tr.Verdict.Outcome, tr.Problem)
		}
	}
	mine := m.Cell("surprise-idle", "mine", 0)
	if mine == nil || mine.Problems != 1 || m.Trials[mine.Trials[0]].Expect != "unknown" {
		t.Errorf("unknown kernel's INFRA-ERROR must count as a problem: %+v", mine)
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
