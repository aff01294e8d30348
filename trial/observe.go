package trial

import (
	"context"
	"fmt"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// observe probes the guest after the removal until scenario.Decide gives
// a verdict. It only gathers evidence (probes, the console, QMP events,
// the sampler's window) and acts on the decision: the rules are
// scenario.Decide's.
func (r *runner) observe(ctx context.Context, removed *removalState) {
	var lastStart time.Time
	for {
		d := scenario.Decide(r.observed())
		if d.NeedWindow {
			r.windowEv = r.window(ctx)
			d = scenario.Decide(r.observed())
		}
		if d.Outcome != "" {
			r.conclude(ctx, d)
			return
		}
		if ctx.Err() != nil {
			r.infra("cancelled while observing: %v", ctx.Err())
			return
		}
		// Probes start every ProbeInterval (at once when one took longer),
		// so a probe's own run time does not stretch the period.
		if len(r.probes) > 0 {
			select {
			case <-time.After(time.Until(lastStart.Add(r.p.ProbeInterval))):
			case <-ctx.Done():
				continue
			}
		}
		lastStart = time.Now()
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		p := probe(pctx, r.m.Agent, r.bdf, r.disk)
		cancel()
		if done, err := removed.finished(); done {
			p.RemovalDone = true
			if err != nil {
				p.RemovalErr = err.Error()
			}
			if r.v.Removal != nil && r.v.Removal.Deleted.IsZero() {
				r.v.Removal.Deleted = removed.deleted
			}
		}
		if p.State == nil {
			r.log.Warn("probe failed", "err", p.Err)
		}
		r.probes = append(r.probes, p)
		r.readSamplesEarly(ctx)
	}
}

// readSamplesEarly reads the sampler's lines once, a second after the
// cut: the looks around the cut are then still in the kernel log, which a
// long trial (a stall that lasts a minute) would rotate them out of. A
// failure here is left for the window's own read to retry.
func (r *runner) readSamplesEarly(ctx context.Context) {
	if r.samplesEarly || r.v.Timeline.Removal.IsZero() || time.Since(r.v.Timeline.Removal) < time.Second {
		return
	}
	r.samplesEarly = true
	if _, err := r.readSamples(ctx); err != nil {
		r.log.Warn("early read of the sampler's lines failed", "err", err)
		r.samples, r.samplesErr = nil, nil
	}
}

// observed is what the trial has seen so far, for scenario.Decide.
func (r *runner) observed() scenario.Observed {
	o := scenario.Observed{
		Scenario: r.t.Scenario, Params: r.p, Removal: r.v.Timeline.Removal, CutStopped: r.cutStopped,
		Probes: r.probes, Window: r.windowEv, Now: time.Now(),
	}
	if r.m == nil {
		return o
	}
	if r.m.Exited() {
		// Let the console drain: a panic message may still be arriving.
		time.Sleep(200 * time.Millisecond)
		o.QEMUExited = fmt.Sprint(r.m.ExitError())
		o.Now = time.Now()
	}
	o.Console = r.m.Console.Lines(0)
	for _, e := range r.m.QMP.EventJournal().Snapshot() {
		o.Events = append(o.Events, scenario.Event{Time: e.Time, Name: e.Item.Event})
	}
	return o
}

// conclude records the decision, and for a HANG gathers the slower
// evidence (stacks, sysrq-w, khungtaskd's report) after deciding, then
// looks once more for a late crash.
func (r *runner) conclude(ctx context.Context, d scenario.Decision) {
	r.v.Warnings = d.Warnings
	r.refreshSamples(ctx)
	switch d.Outcome {
	case scenario.Hang:
		r.hang(ctx, d.Hang)
		if late := scenario.Decide(r.observed()); late.Outcome == scenario.Crash {
			r.v.Crash, r.v.Warnings = late.Crash, late.Warnings
			r.overrule(scenario.Crash, late.Reason+" (after a HANG: "+r.v.Reason+")")
		}
	case scenario.Crash:
		r.v.Crash = d.Crash
		r.decide(d.Outcome, d.Reason)
	case scenario.Pass, scenario.Missed:
		r.v.Window = r.windowEv
		r.decide(d.Outcome, d.Reason)
	case scenario.Recovered:
		// What the cut hit is evidence here too, though a stall that
		// recovered tested something whatever the window says.
		r.v.Stall = d.Stall
		r.v.Stall.Task.Role = scenario.Role(d.Stall.Task, r.trigPID, r.t.Scenario.Trigger)
		r.v.Window = r.window(ctx)
		r.decide(d.Outcome, d.Reason)
	default:
		r.decide(d.Outcome, d.Reason)
	}
}

// window judges the sampler's looks around the cut (nil before any
// removal).
func (r *runner) window(ctx context.Context) *scenario.WindowEvidence {
	if r.m == nil || r.cutStopped.IsZero() {
		return nil
	}
	want, console := r.t.Scenario.WindowWant(), r.m.Console.Lines(0)
	g := scenario.ReadGuestTimes(console, r.t.Scenario.Removal, r.cutStopped)
	at, ok := scenario.CutFacts(g, want, console)
	if hit := r.anchorGuestTime(g); ok && hit != nil {
		at.Anchor = &scenario.AnchorFact{Symbol: r.v.Anchor.Symbol, Hit: time.Duration(*hit), Delay: time.Duration(r.v.Anchor.Delay)}
	}
	if !ok {
		return &scenario.WindowEvidence{Want: want, Reason: "no YANK-T0 stamp on the console: the cut cannot be placed on the guest clock"}
	}
	lines, err := r.readSamples(ctx)
	if err != nil {
		return &scenario.WindowEvidence{Want: want, Reason: "the sampler's lines could not be read: " + err.Error()}
	}
	return scenario.JudgeWindow(want, scenario.ParseSamples(lines), at)
}

// anchorGuestTime maps the anchor's hit to the guest clock through T0,
// as ReadGuestTimes maps the cut (nil: no hit, or no T0).
func (r *runner) anchorGuestTime(g scenario.GuestTimes) *scenario.Duration {
	an := r.v.Anchor
	if an == nil || an.HitHost.IsZero() || g.T0 == nil || g.T0Host.IsZero() {
		return nil
	}
	d := scenario.Duration(time.Duration(*g.T0) + an.HitHost.Sub(g.T0Host))
	return &d
}

// hang records a HANG: which task, where, its stack and the guest-side
// proof, then gathers the slower evidence (sysrq-w, the hung-task report).
func (r *runner) hang(ctx context.Context, f *scenario.HangFinding) {
	tasks := append([]scenario.Task(nil), f.Stuck...)
	for i := range tasks {
		t := &tasks[i]
		t.Stack, t.StackError = stackOf(ctx, r.m.Agent, t.PID)
		t.Role = scenario.Role(*t, r.trigPID, r.t.Scenario.Trigger)
	}
	r.v.Stuck = tasks
	class, primary := scenario.Classify(tasks, r.dev.RemoveWaits)
	r.v.Classification = class
	r.v.StuckTask = primary
	w := f.Watches[primary.PID]
	proof := &scenario.HangProof{IOUnchanged: true, CtxtSwitchesUnchanged: true,
		GuestClock: scenario.Duration(w.GuestClock), HostClock: scenario.Duration(w.HostClock), Probes: w.Probes}
	r.v.HangProof = proof
	r.decide(scenario.Hang, scenario.HangReason(f, *primary))
	r.stopSampler(ctx)
	r.v.Window = r.window(ctx)
	r.collectHangEvidence(ctx, primary.PID)
	proof.HungTaskReport = r.v.HungTaskReport
}

// collectHangEvidence asks for a blocked-task dump (sysrq-w) and waits,
// bounded, for khungtaskd's report on the primary task.
func (r *runner) collectHangEvidence(ctx context.Context, pid int) {
	mark := r.m.Console.Mark()
	if _, err := r.guest(ctx, "sysrq-w", "echo w > /proc/sysrq-trigger", 5*time.Second); err == nil {
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := r.m.Console.Wait(wctx, mark, "Show Blocked State"); err != nil {
			r.log.Warn("no sysrq-w dump on the console", "err", err)
		}
		cancel()
	} else {
		r.log.Warn("sysrq-w", "err", err)
	}
	// khungtaskd checks every timeout: the task, stuck for the stall
	// window already, is reported at one of the next two checks.
	wait := time.Duration(2*r.p.HungTaskTimeout+1) * time.Second
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err := r.m.Console.WaitFunc(wctx, 0, func(s string) bool {
		got, ok := scenario.HungTaskPID(s)
		return ok && got == pid
	})
	r.v.HungTaskReport = err == nil
	// Give the report's trailing stack lines a moment to arrive.
	time.Sleep(200 * time.Millisecond)
}
