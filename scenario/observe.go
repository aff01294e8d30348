package scenario

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// observe probes the guest after the removal until it can say PASS or HANG
// (or CRASH, or INFRA-ERROR when it cannot judge).
//
// HANG: a task stays in D state for StallWindow while the disk's completed
// and in-flight I/O counters do not move. io_ticks keeps growing while
// requests are stuck, so only completions and in-flight count as progress.
// PASS: the device is gone from the guest, the trigger finished, no task
// is in D state, and the host saw the removal complete, for Settle.
func (r *runner) observe(ctx context.Context, removed *removalState) {
	start := r.v.Timeline.Removal
	lastProgress := start
	lastCompletions := ""
	dSince := map[int]time.Time{}
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
		if st.Completions != lastCompletions {
			lastCompletions, lastProgress = st.Completions, now
		}
		for pid := range dSince {
			if _, still := st.DTasks[pid]; !still {
				delete(dSince, pid)
			}
		}
		for pid := range st.DTasks {
			if _, ok := dSince[pid]; !ok {
				dSince[pid] = now
			}
		}
		removalDone := false
		select {
		case <-removed.done:
			removalDone = removed.err == nil
		default:
		}
		if !st.DevicePresent && st.Trigger != "running" && len(st.DTasks) == 0 && removalDone {
			if quietSince.IsZero() {
				quietSince = now
			}
			if now.Sub(quietSince) >= r.p.Settle {
				r.decide(Pass, fmt.Sprintf("device removed, %s trigger finished, no task stuck", r.t.Scenario.Trigger))
				return
			}
		} else {
			quietSince = time.Time{}
		}
		var stuck []int
		for pid, since := range dSince {
			if now.Sub(since) >= r.p.StallWindow {
				stuck = append(stuck, pid)
			}
		}
		if len(stuck) > 0 && now.Sub(lastProgress) >= r.p.StallWindow {
			sort.Ints(stuck)
			r.hang(ctx, st, stuck, now.Sub(lastProgress))
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

// checkConsoleAndQEMU decides CRASH on an oops/BUG/panic on the console or
// a GUEST_PANICKED event, and INFRA-ERROR if QEMU died otherwise.
func (r *runner) checkConsoleAndQEMU() bool {
	crash, warns, _ := scanConsole(r.m.Console.Lines(0))
	r.v.Warnings = warns
	panicked := false
	for _, e := range r.m.QMP.EventJournal().Snapshot() {
		if e.Item.Event == "GUEST_PANICKED" {
			panicked = true
		}
	}
	if crash != nil {
		r.v.Crash = crash
		r.decide(Crash, "kernel reported: "+crash.Line)
		return true
	}
	if panicked {
		r.decide(Crash, "guest panicked (pvpanic GUEST_PANICKED)")
		return true
	}
	if r.m.Exited() {
		// Let the console drain: a panic message may still be arriving.
		if crash, _, _ := scanConsole(r.m.Console.Lines(0)); crash != nil {
			r.v.Crash = crash
			r.decide(Crash, "kernel reported: "+crash.Line)
			return true
		}
		r.infra("QEMU exited during the trial (%v)", r.m.ExitError())
		return true
	}
	return false
}

// hang records a HANG: which task, where, and its stack, then gathers the
// slower evidence (sysrq-w, the hung-task report) after deciding.
func (r *runner) hang(ctx context.Context, st guestState, stuck []int, stalled time.Duration) {
	var tasks []Task
	for _, pid := range stuck {
		t := st.DTasks[pid]
		t.Stack = stackOf(ctx, r.m.Agent, pid)
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
	r.decide(Hang, fmt.Sprintf("%s (pid %d) in D state under %s, no I/O progress for %s", primary.Comm, primary.PID, primary.WChan, stalled.Round(time.Millisecond)))
	r.collectHangEvidence(ctx, primary.PID)
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
		r.m.Console.Wait(wctx, mark, "Show Blocked State")
		cancel()
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
