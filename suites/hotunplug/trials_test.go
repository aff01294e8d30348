package hotunplug_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/internal/judge"
	"github.com/yank-dev/yank/suites/plan"
	"github.com/yank-dev/yank/suites/report"
)

// entries turns the planned trials into table entries. It runs while
// Ginkgo builds the spec tree, after TestHotunplug has planned them.
func entries() []TableEntry {
	// A trial that runs past 45 s prints progress reports with its phase,
	// unless --poll-progress-after says otherwise.
	var poll []any
	if c, _ := GinkgoConfiguration(); c.PollProgressAfter == 0 {
		poll = []any{PollProgressAfter(45 * time.Second), PollProgressInterval(30 * time.Second)}
	}
	var out []TableEntry
	for _, t := range trials {
		args := append([]any{Label(t.Labels()...), SpecTimeout(cfg.timeout)}, poll...)
		out = append(out, Entry(t.Name(), append(args, t)...))
	}
	return out
}

var _ = Describe("hot-unplug", func() {
	DescribeTable("trial", runTrial, entries())
})

// runTrial boots a guest, races the removal against the trigger and
// asserts the kernel's expectation for this scenario and offset.
func runTrial(ctx SpecContext, t plan.Trial) {
	g, ok := run.Guests[t.Kernel.Name]
	Expect(ok).To(BeTrue(), "kernel %s was not prepared in SynchronizedBeforeSuite", t.Kernel.Name)
	et := engine.Trial{Planned: t.Planned(), Guest: g, Params: cfg.detection.Apply(scenario.Params{IOTimeout: cfg.ioTimeout, AnchorBudget: cfg.anchorBudget}), Snapshots: cfg.snapshots}
	dir := et.Dir(run.Artifacts)
	if run.TempRoot {
		// Evidence of passed trials in a temp root is litter; failures keep it.
		DeferCleanup(func() {
			if !CurrentSpecReport().Failed() {
				os.RemoveAll(dir)
			}
		})
	}
	p := &phases{}
	DeferCleanup(AttachProgressReporter(p.Latest))

	var backend machine.Backend // nil: a local QEMU process
	if cfg.pool != nil {
		b, release, err := cfg.pool.Acquire(ctx)
		Expect(err).NotTo(HaveOccurred(), "no libvirt host can take the guest")
		DeferCleanup(release)
		backend = b
	}
	v, err := engine.RunOne(ctx, backend, et, run.Artifacts, p)
	Expect(err).NotTo(HaveOccurred(), "the trial could not start")

	rec := report.Record{
		Kernel: t.Kernel.Name, Scenario: t.Scenario.Name, Removal: string(t.Scenario.Removal),
		Offset: scenario.Duration(t.Nominal), Anchor: t.Anchor, Repeat: t.Repeat, Seed: cfg.opts.Seed, Verdict: v,
	}
	j := rec.Judge(t.Expect)
	addEvidence(rec, dir)
	// A problem fails the spec; a trial that tested nothing (MISSED) or
	// that no rule covers is skipped with the reason, never a green pass.
	// A rate rule's cell is judged after the suite (judge.Rates).
	judge.End(j, func() string {
		console := filepath.Join(dir, "console.log")
		return fmt.Sprintf("\n\n%s\nconsole (last 40 lines of %s):\n%s", v.String(), console, tail(console, 40))
	})
}

// addEvidence attaches the trial to the spec's report: the Record (which
// `yank report` reads back from the JSON report) always, and the readable
// pieces (stuck stack, timeline excerpt, verdict JSON) for failures or -v.
func addEvidence(rec report.Record, dir string) {
	v := rec.Verdict
	AddReportEntry(report.EntryName, rec, ReportEntryVisibilityNever)
	AddReportEntry("verdict", fmt.Sprintf("%s (expected %s) %s, achieved offset %s, detected in %s",
		v.Outcome, rec.Expect, v.Summary(), time.Duration(v.AchievedOffset).Round(time.Millisecond),
		time.Duration(v.DetectionLatency).Round(10*time.Millisecond)))
	if v.Window != nil {
		AddReportEntry("window", v.Window.String())
	}
	if v.StuckTask != nil {
		AddReportEntry("stuck stack", fmt.Sprintf("%s pid %d (%s) wchan %s\n  %s", v.StuckTask.Comm, v.StuckTask.PID,
			v.StuckTask.Role, v.StuckTask.WChan, strings.Join(v.StuckTask.Stack, "\n  ")), ReportEntryVisibilityFailureOrVerbose)
	}
	if tl := timelineExcerpt(dir, 40); tl != "" {
		AddReportEntry("timeline", tl, ReportEntryVisibilityFailureOrVerbose)
	}
	if b, err := json.MarshalIndent(v, "", "  "); err == nil {
		AddReportEntry("verdict.json", string(b), ReportEntryVisibilityFailureOrVerbose)
	}
	AddReportEntry("artifacts", dir)
}
