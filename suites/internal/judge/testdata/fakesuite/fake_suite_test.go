// A small Ginkgo suite that ends its specs and judges its cells the way
// suites/hotunplug does (package judge), on made-up verdicts instead of
// guests. judge_test.go runs it and reads its JSON and JUnit reports.
package fakesuite_test

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
	"github.com/yank-dev/yank/suites/internal/judge"
	"github.com/yank-dev/yank/suites/report"
)

func TestFakeSuite(t *testing.T) {
	RunSpecs(t, "fake hotunplug")
}

type trial struct {
	kernel, scenario string
	offset           time.Duration
	repeat           int
	outcome          scenario.Outcome
}

// runTrial is the tail of the real suite's runTrial.
func runTrial(t trial) {
	v := scenario.Verdict{Outcome: t.outcome, Kernel: t.kernel, Scenario: t.scenario, Reason: "made up"}
	switch t.outcome {
	case scenario.Hang:
		v.Classification = "pciehp-del_gendisk"
	case scenario.Missed:
		v.Window = &scenario.WindowEvidence{Reason: "the trigger had already finished 9ms before the cut"}
	}
	rec := report.Record{Kernel: t.kernel, Scenario: t.scenario, Offset: scenario.Duration(t.offset), Repeat: t.repeat, Verdict: v}
	j := rec.Judge(expect.Default.For(t.kernel, expect.None, t.scenario, "", t.offset))
	AddReportEntry(report.EntryName, rec, ReportEntryVisibilityNever)
	AddReportEntry("verdict", string(v.Outcome))
	judge.End(j, func() string { return "\n\ndetail" })
}

var _ = DescribeTable("trial", runTrial,
	// rfc-v3 surprise-io @2s: 1/3 hung, below the rate rule's 50 %.
	Entry("rfc-v3 surprise-io @2s #1", trial{"rfc-v3", "surprise-io", 2 * time.Second, 1, scenario.Pass}),
	Entry("rfc-v3 surprise-io @2s #2", trial{"rfc-v3", "surprise-io", 2 * time.Second, 2, scenario.Hang}),
	Entry("rfc-v3 surprise-io @2s #3", trial{"rfc-v3", "surprise-io", 2 * time.Second, 3, scenario.Pass}),
	// stock surprise-io @2s: 1 tested and 1 missed: too few to judge.
	Entry("stock surprise-io @2s #1", trial{"stock", "surprise-io", 2 * time.Second, 1, scenario.Hang}),
	Entry("stock surprise-io @2s #2", trial{"stock", "surprise-io", 2 * time.Second, 2, scenario.Missed}),
	// Exact rules: a problem, a pass.
	Entry("stock surprise-idle @0s #1", trial{"stock", "surprise-idle", 0, 1, scenario.Hang}),
	Entry("rfc-v3-virtio surprise-idle @0s #1", trial{"rfc-v3-virtio", "surprise-idle", 0, 1, scenario.Pass}),
)

var _ = ReportAfterSuite(judge.RatesNode, judge.Rates)
