package scenario

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// dWatch is what the probes saw of one task since it entered D state (or
// last ran: a change in its context-switch count restarts the watch).
type dWatch struct {
	host   time.Time
	uptime time.Duration // guest clock at the first probe
	ctxt   int64
	probes int
}

// observe probes the guest after the removal until it can say PASS or HANG
// (or CRASH, or INFRA-ERROR when it cannot judge). A PASS whose cut missed
// the scenario's window becomes MISSED (pass).
//
// HANG is proven from inside the guest: a task stays in D state while its
// context-switch count (/proc/PID/status) does not move, over StallWindow
// of host time AND of the guest's own clock (/proc/uptime), seen by at
// least minStallProbes probes (each one shows the guest was running), and
// the disk's completed and in-flight counters do not move either (io_ticks
// grows while stuck, so it does not count). A host starving the guest of
// CPU slows the probes and so cannot make a hang out of a slow guest.
// PASS: the device is gone from the guest, the trigger finished, no task
// is in D state, the host saw the removal complete and the guest logged
// the removal path, for Settle.
func (r *runner) observe(ctx context.Context, removed *removalState) {
	start := r.v.Timeline.Removal
	lastProgress, lastProgressUp := start, time.Duration(-1)
	lastCompletions := ""
	watch := map[int]*dWatch{}
	var quietSince time.Time
	failures := 0
	var lastState guestState
	var lastErr error
	for {
		if r.checkConsoleAndQEMU() {
			return
		}
		if ctx.Err() != nil {
			r.infra("cancelled while observing: %v", ctx.Err())
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := probe(pctx, r.m.Agent, r.bdf, r.disk)
		cancel()
		now := time.Now()
		var bad *badProbeError
		if errors.As(err, &bad) {
			// yank's own bug, not the guest's: never a silent agent.
			r.infra("%v", err)
			return
		}
		if err != nil {
			if r.checkConsoleAndQEMU() {
				return
			}
			failures++
			lastErr = err
			r.log.Warn("probe failed", "err", err, "consecutive", failures)
			if failures >= 3 {
				r.infra("guest agent went silent after the removal (3 probes failed, last: %v)", err)
				return
			}
			continue
		}
		failures = 0
		lastState = st
		if st.Completions != lastCompletions || lastProgressUp < 0 {
			lastCompletions, lastProgress, lastProgressUp = st.Completions, now, st.Uptime
		}
		for pid := range watch {
			if _, still := st.DTasks[pid]; !still {
				delete(watch, pid)
			}
		}
		for pid, t := range st.DTasks {
			w, ok := watch[pid]
			if !ok || w.ctxt != t.CtxtSwitches[1] {
				// New in D state, or it ran since the last probe.
				watch[pid] = &dWatch{host: now, uptime: st.Uptime, ctxt: t.CtxtSwitches[1], probes: 1}
				continue
			}
			w.probes++
		}
		removalDone, removalErr := removed.finished()
		if removalDone && r.v.Removal != nil && r.v.Removal.Deleted.IsZero() {
			r.v.Removal.Deleted = removed.deleted
		}
		pathSeen := r.removalPathSeen()
		if !pathSeen && now.Sub(start) > r.p.RemovalProof {
			r.infra("the guest never logged the %s removal path (%s) within %s of the removal: the removal did not reach the guest's pciehp",
				r.t.Scenario.Removal, removalPathPattern(r.t.Scenario.Removal), r.p.RemovalProof)
			return
		}
		if !st.DevicePresent && st.Trigger != "running" && len(st.DTasks) == 0 && removalDone && removalErr == nil && pathSeen {
			if quietSince.IsZero() {
				quietSince = now
			}
			if now.Sub(quietSince) >= r.p.Settle {
				// A late oops beats a PASS.
				if r.checkConsoleAndQEMU() {
					return
				}
				r.pass(ctx, fmt.Sprintf("device removed, %s trigger finished, no task stuck", r.t.Scenario.Trigger))
				return
			}
		} else {
			quietSince = time.Time{}
		}
		ioStalled := now.Sub(lastProgress) >= r.p.StallWindow && st.Uptime-lastProgressUp >= r.p.StallWindow
		var stuck []int
		for pid, w := range watch {
			if now.Sub(w.host) >= r.p.StallWindow && st.Uptime-w.uptime >= r.p.StallWindow && w.probes >= minStallProbes {
				stuck = append(stuck, pid)
			}
		}
		if len(stuck) > 0 && ioStalled && pathSeen {
			sort.Ints(stuck)
			r.hang(ctx, st, watch, stuck, now.Sub(lastProgress), st.Uptime-lastProgressUp)
			return
		}
		if now.Sub(start) > r.p.Budget {
			r.infra("no verdict %s after the removal (device present=%v, trigger %s, D tasks %d, last I/O progress %s ago, probe error %v)",
				r.p.Budget, lastState.DevicePresent, lastState.Trigger, len(lastState.DTasks), now.Sub(lastProgress).Round(time.Millisecond), lastErr)
			return
		}
		select {
		case <-time.After(r.p.ProbeInterval):
		case <-ctx.Done():
		}
	}
}

// minStallProbes: answered probes a stuck task must be seen by, unmoved,
// before it counts as hung (each answer shows the guest was running).
const minStallProbes = 4

// removalPathSeen reports whether the guest logged the removal path the
// scenario asked for (pciehp's surprise or Attention Button message).
func (r *runner) removalPathSeen() bool {
	return guestTimes(r.m.Console.Lines(0), r.t.Scenario.Removal, time.Time{}).Removal != nil
}

// pass decides PASS, or MISSED when the cut landed outside the window.
func (r *runner) pass(ctx context.Context, reason string) {
	w := r.window(ctx)
	r.v.Window = w
	switch {
	case w != nil && w.Samples == 0:
		// yank's own sampler failed: no proof either way.
		r.infra("no window evidence: %s", w.Reason)
	case w != nil && !w.Hit:
		reason := "the cut landed outside the " + r.t.Scenario.Name + " window: " + w.Reason
		if g := guestTimes(r.m.Console.Lines(0), r.t.Scenario.Removal, r.cutStopped); g.T1 != nil && g.T0 != nil && g.Cut != nil && *g.T1 < *g.Cut {
			reason += fmt.Sprintf(" (the trigger returned at +%s, the cut came at +%s)",
				(time.Duration(*g.T1) - time.Duration(*g.T0)).Round(10*time.Millisecond), (time.Duration(*g.Cut) - time.Duration(*g.T0)).Round(10*time.Millisecond))
		}
		r.decide(Missed, reason)
	default:
		r.decide(Pass, reason)
	}
}

// window judges the sampler's looks around the cut (nil before any
// removal).
func (r *runner) window(ctx context.Context) *WindowEvidence {
	if r.m == nil || r.cutStopped.IsZero() {
		return nil
	}
	g := guestTimes(r.m.Console.Lines(0), r.t.Scenario.Removal, r.cutStopped)
	if g.Cut == nil {
		return &WindowEvidence{Want: r.t.Scenario.Window, Reason: "no YANK-T0 stamp on the console: the cut cannot be placed on the guest clock"}
	}
	lines, err := r.readSamples(ctx)
	if err != nil {
		return &WindowEvidence{Want: r.t.Scenario.Window, Reason: "the sampler's lines could not be read: " + err.Error()}
	}
	return judgeWindow(r.t.Scenario.Window, parseSamples(lines), time.Duration(*g.Cut))
}

// checkConsoleAndQEMU decides CRASH on an oops/BUG/panic on the console or
// a GUEST_PANICKED event, and INFRA-ERROR if QEMU died otherwise.
func (r *runner) checkConsoleAndQEMU() bool {
	if r.crashed() {
		return true
	}
	if r.m.Exited() {
		// Let the console drain: a panic message may still be arriving.
		time.Sleep(200 * time.Millisecond)
		if r.crashed() {
			return true
		}
		r.infra("QEMU exited during the trial (%v)", r.m.ExitError())
		return true
	}
	return false
}

// crashed rescans the console and QMP events; on a crash it decides CRASH,
// overriding an earlier HANG (a late oops is never lost).
func (r *runner) crashed() bool {
	crash, warns, _ := scanConsole(r.m.Console.Lines(0))
	r.v.Warnings = warns
	reason := ""
	switch {
	case crash != nil:
		r.v.Crash = crash
		reason = "kernel reported: " + crash.Line
	case r.guestPanicked():
		reason = "guest panicked (pvpanic GUEST_PANICKED)"
	default:
		return false
	}
	if r.v.Outcome == Hang {
		r.overrule(Crash, reason+" (after a HANG: "+r.v.Reason+")")
		return true
	}
	r.decide(Crash, reason)
	return true
}

func (r *runner) guestPanicked() bool {
	for _, e := range r.m.QMP.EventJournal().Snapshot() {
		if e.Item.Event == "GUEST_PANICKED" {
			return true
		}
	}
	return false
}

// hang records a HANG: which task, where, its stack and the guest-side
// proof, then gathers the slower evidence (sysrq-w, the hung-task report)
// after deciding, and rescans the console for a late crash.
func (r *runner) hang(ctx context.Context, st guestState, watch map[int]*dWatch, stuck []int, ioStalled, ioStalledGuest time.Duration) {
	var tasks []Task
	proof := &HangProof{IOUnchanged: true, CtxtSwitchesUnchanged: true}
	for _, pid := range stuck {
		t := st.DTasks[pid]
		w := watch[pid]
		t.CtxtSwitches[0] = w.ctxt
		t.Stack, t.StackError = stackOf(ctx, r.m.Agent, pid)
		switch {
		case pid == r.trigPID:
			t.Role = "trigger:" + string(r.t.Scenario.Trigger)
		case strings.Contains(t.Comm, "pciehp"):
			t.Role = "pciehp"
		default:
			t.Role = "other"
		}
		tasks = append(tasks, t)
	}
	r.v.Stuck = tasks
	class, primary := classify(tasks)
	r.v.Classification = class
	r.v.StuckTask = primary
	w := watch[primary.PID]
	proof.GuestClock = Duration(st.Uptime - w.uptime)
	proof.HostClock = Duration(time.Since(w.host))
	proof.Probes = w.probes
	r.v.HangProof = proof
	r.decide(Hang, fmt.Sprintf("%s (pid %d) in D state under %s, did not run for %s of guest time (%d probes, context switches stuck at %d), no I/O completed for %s (guest %s)",
		primary.Comm, primary.PID, primary.WChan, time.Duration(proof.GuestClock).Round(time.Millisecond), proof.Probes,
		primary.CtxtSwitches[1], ioStalled.Round(time.Millisecond), ioStalledGuest.Round(time.Millisecond)))
	r.stopSampler(ctx)
	r.v.Window = r.window(ctx)
	r.collectHangEvidence(ctx, primary.PID)
	proof.HungTaskReport = r.v.HungTaskReport
	r.crashed()
}

// classify picks the task that explains the hang: the unbind (or other
// trigger) task under del_gendisk, else pciehp under del_gendisk (the
// no-unbind bug), else the first stuck task.
func classify(tasks []Task) (string, *Task) {
	in := func(t Task, fn string) bool {
		for _, f := range t.Stack {
			if strings.HasPrefix(f, fn+"+") || f == fn {
				return true
			}
		}
		return false
	}
	for i, t := range tasks {
		if strings.HasPrefix(t.Role, "trigger:unbind") && in(t, "del_gendisk") {
			return "unbind-del_gendisk", &tasks[i]
		}
	}
	for i, t := range tasks {
		if t.Role == "pciehp" && in(t, "del_gendisk") {
			return "pciehp-del_gendisk", &tasks[i]
		}
	}
	for i, t := range tasks {
		if in(t, "del_gendisk") {
			return "other-del_gendisk", &tasks[i]
		}
	}
	return "other-d-state", &tasks[0]
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
	wait := time.Duration(2*r.p.HungTaskTimeout+2) * time.Second
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err := r.m.Console.WaitFunc(wctx, 0, func(s string) bool {
		m := hungPattern.FindStringSubmatch(s)
		return m != nil && m[2] == fmt.Sprint(pid)
	})
	r.v.HungTaskReport = err == nil
	// Give the dump's trailing stack lines a moment to arrive.
	time.Sleep(500 * time.Millisecond)
}
