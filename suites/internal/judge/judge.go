// Package judge is the hotunplug suite's Ginkgo side of a judgement: it
// ends a trial's spec on the trial's judgement and, after the suite,
// judges each cell's hang rate against its rate rule. It lives outside
// the suite's _test files so that a small real Ginkgo suite (testdata/)
// can check what Ginkgo makes of it in its JSON and JUnit reports.
package judge

import (
	"fmt"
	"strings"

	"github.com/onsi/ginkgo/v2"

	"github.com/yank-dev/yank/suites/expect"
	"github.com/yank-dev/yank/suites/report"
)

// RatesNode is the text of the suite's ReportAfterSuite node: its JUnit
// test case is "[ReportAfterSuite] yank hang rates".
const RatesNode = "yank hang rates"

// End ends a trial's spec: a problem fails it with the message and
// detail(), a trial that says nothing either way is skipped with the
// reason (JUnit shows it skipped, never passed), a met one passes. The
// spec's report entries, added before, stay with it in every case.
func End(j expect.Judgement, detail func() string) {
	switch j.Status {
	case expect.Problem:
		ginkgo.Fail(j.Message+detail(), 1)
	case expect.NotJudged:
		ginkgo.Skip(j.Message, 1)
	}
}

// Rates is the body of the suite's ReportAfterSuite (RatesNode): it
// groups the trials by cell, attaches every cell's rate as a RateEntryName
// entry (for report.json and junit.xml) and a readable table, and fails
// when a cell under a rate rule with enough tested trials hung less often
// than the rule says. A cell with too few is reported as not judged.
func Rates(r ginkgo.Report) {
	if r.SuiteConfig.DryRun {
		return // no trial ran
	}
	in, err := report.FromReports([]ginkgo.Report{r})
	if err != nil {
		ginkgo.Fail("reading the trials back from the suite's report: " + err.Error())
	}
	var lines, failed []string
	for _, c := range report.Rates(in.Records) {
		ginkgo.AddReportEntry(report.RateEntryName, c, ginkgo.ReportEntryVisibilityNever)
		lines = append(lines, c.String())
		if c.Failed() {
			failed = append(failed, c.String())
		}
	}
	if len(lines) == 0 {
		return
	}
	ginkgo.AddReportEntry("hang rates", strings.Join(lines, "\n"))
	if len(failed) > 0 {
		ginkgo.Fail(fmt.Sprintf("%d cell(s) hung less often than their rate rule says:\n%s", len(failed), strings.Join(failed, "\n")))
	}
}
