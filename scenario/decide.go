package scenario

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/journal"
)

// The decision core: Decide turns what a trial observed after the removal
// (the probes' answers, the console, QMP events) into a verdict. It does
// no I/O, so every rule is table-tested on recorded trials
// (testdata/trials/*/probes.jsonl, decide_test.go); package trial only
// gathers the evidence and calls it after every probe.

// GuestState is one look at the guest through the agent (the probe
// script's answer, ParseProbe).
type GuestState struct {
	DevicePresent bool     `json:"device_present"`
	Trigger       string   `json:"trigger"`               // "running", "exited" or "none"
	Completions   string   `json:"completions,omitempty"` // reads/writes completed and in flight; "" once the disk is gone
	Uptime        Duration `json:"uptime"`                // the guest's clock (/proc/uptime)
	// DTasks are the tasks in D state by pid; CtxtSwitches[1] holds the
	// current count.
	DTasks map[int]Task `json:"d_tasks,omitempty"`
}

// Probe is one probe of the guest after the removal as the trial recorded
// it (a line of probes.jsonl).
type Probe struct {
	Host  time.Time   `json:"host"`            // when the answer (or failure) came
	State *GuestState `json:"state,omitempty"` // nil: the probe failed
	Err   string      `json:"err,omitempty"`
	// Unreadable: the probe ran but its output could not be parsed:
	// yank's own bug, never a silent agent.
	Unreadable bool `json:"unreadable,omitempty"`
	// RemovalDone: by then the host saw the removal complete (the cut
	// returned, or DEVICE_DELETED after device_del); RemovalErr is its
	// error.
	RemovalDone bool   `json:"removal_done,omitempty"`
	RemovalErr  string `json:"removal_err,omitempty"`
	// Slow: the probe failed because its deadline passed after the agent
	// had started it (guestagent.ErrNotExited): a slow guest, not a
	// silent one.
	Slow bool `json:"slow,omitempty"`
}

// Event is a QMP event as the host received it.
type Event struct {
	Time time.Time `json:"host_time"`
	Name string    `json:"event"`
}

// Observed is everything a verdict is decided from, as far as it goes.
type Observed struct {
	Scenario Scenario
	Params   Params    // with defaults
	Removal  time.Time // host time of the cut (or device_del)
	// CutStopped is when the vCPUs stopped for the cut (device_del's
	// issue time for a graceful removal): the window is judged there.
	CutStopped time.Time
	Probes     []Probe
	Console    []journal.Entry[string]
	Events     []Event
	QEMUExited string // non-empty: QEMU is gone, with its exit status
	// Now is when the decision is made (zero: the last probe's time);
	// console lines and events after it do not count yet.
	Now time.Time
	// Window is the window judged from the sampler's lines (JudgeWindow);
	// nil until Decide asks for it (Decision.NeedWindow).
	Window *WindowEvidence
}

// Decision is Decide's answer.
type Decision struct {
	Outcome Outcome // "": keep probing
	Reason  string
	// NeedWindow: the guest settled; judge the window (Observed.Window)
	// and decide again (PASS or MISSED).
	NeedWindow bool
	Crash      *ConsoleHit  // Outcome Crash from the console
	Warnings   []ConsoleHit // every WARN on the console so far
	Hang       *HangFinding // Outcome Hang
	Stall      *Stall       // Outcome Recovered: the stall it recovered from
}

// Stall is a stretch of probes that met a HANG's proof (a task unmoved in
// D state and no I/O completing, for at least StallWindow on both
// clocks) but, so far or for good, not for the device's hang horizon.
type Stall struct {
	Task Task `json:"task"` // the stuck task with the lowest pid
	// Since is the last probe that saw I/O progress before the stall;
	// Until the first probe that saw it over (zero while it lasts).
	Since       time.Time `json:"since"`
	SinceUptime Duration  `json:"since_uptime"` // the guest clock at Since
	Until       time.Time `json:"until,omitzero"`
	// Host and Guest are its length on each clock.
	Host  Duration `json:"host"`
	Guest Duration `json:"guest"`
	// RecoveryLine is the first console line of the device's recovery
	// (Device.Recovery), "" when it logged none.
	RecoveryLine string `json:"recovery_line,omitempty"`
}

// HangFinding is the guest-side proof behind a HANG, before the stuck
// tasks' stacks are read.
type HangFinding struct {
	Stuck   []Task        // sorted by pid; CtxtSwitches[0] from the watch's first probe
	Watches map[int]Watch // by pid
	// IOStalled is how long the disk's counters did not move, on the host
	// clock and on the guest's.
	IOStalled, IOStalledGuest time.Duration
}

// Watch is what the probes saw of one task since it entered D state (or
// last ran: a change in its context-switch count restarts the watch).
type Watch struct {
	Host   time.Time // first probe of the watch
	Uptime Duration  // the guest clock then
	Ctxt   int64     // context switches then
	Probes int       // answered probes that saw it unmoved
	// GuestClock and HostClock are how far each clock moved from the
	// first probe of the watch to the last.
	GuestClock, HostClock time.Duration
}

// minStallProbes: answered probes a stuck task must be seen by, unmoved,
// before it counts as hung (each answer shows the guest was running).
const minStallProbes = 4

// timedSleeps are the wchans of uninterruptible sleeps a timer ends: a
// task there has not stopped, it sleeps for a set time (pciehp sleeps a
// second in msleep after it powers a slot off, which the timer wheel may
// stretch by 12.5 %; with a busy host a fixed kernel's trial once saw it
// unmoved for 1.11 s of guest time, longer than the 1 s stall window),
// so it is never a HANG's stuck task. A task looping in such sleeps moves
// its context-switch count anyway.
var timedSleeps = []string{"msleep", "usleep_range_state", "schedule_hrtimeout_range_clock"}

// maxProbeFailures: consecutive failed probes that make a silent agent.
const maxProbeFailures = 3

// Decide applies the verdict rules to what was observed:
//
//   - CRASH: an oops/BUG/panic on the console or a GUEST_PANICKED event,
//     whatever else was seen (a late oops beats a PASS).
//   - INFRA-ERROR: QEMU exited; a probe's answer was unreadable; the agent
//     failed maxProbeFailures probes in a row (a probe the agent still
//     ran when its deadline passed is a slow guest, not a silent one:
//     those count only once the budget is spent); the guest never logged the
//     removal path within RemovalProof; no verdict within Budget.
//   - HANG is proven from inside the guest: a task stays in D state while
//     its context-switch count does not move (a task in a timed sleep,
//     timedSleeps, is not stuck), over StallWindow of host
//     time AND of the guest's own clock, seen by at least minStallProbes
//     probes (each one shows the guest was running), and the disk's
//     completed and in-flight counters do not move either (io_ticks grows
//     while stuck, so it does not count); and the guest logged the
//     removal path. A host starving the guest of CPU slows the probes and
//     so cannot make a hang out of a slow guest.
//     For a device whose driver times requests out (nvme), the stall
//     must outlast the device's hang horizon (Device.HangAfter: the stall
//     window plus two I/O timeouts), and the budget grows to match.
//   - RECOVERED: the guest settled (as for PASS) after a stall that met
//     the HANG proof for StallWindow, lasted RecoveredAfter on both
//     clocks and ended before the horizon (a shorter one is part of a
//     PASS): the
//     driver's timeout handling got it out. The verdict gives the stall's
//     length and the device's first recovery line on the console.
//   - PASS: the device is gone from the guest, the trigger finished, no
//     task is in D state, the host saw the removal complete and the guest
//     logged the removal path, for Settle, with no stall on the way; then
//     the window decides: a cut outside the scenario's window is MISSED
//     (it tested nothing), a window the sampler never saw is INFRA-ERROR.
//
// The timed rules judge at the last probe's time; console lines and
// events count up to Observed.Now (by default that same time), so a
// recorded trial replays to the same decision at the same probe.
func Decide(o Observed) Decision {
	now := o.Now
	if n := len(o.Probes); now.IsZero() && n > 0 {
		now = o.Probes[n-1].Host
	}
	console := upTo(o.Console, now)
	d := Decision{}
	crash, warns, _ := ScanConsole(console)
	d.Warnings = warns
	switch {
	case crash != nil:
		d.Outcome, d.Reason, d.Crash = Crash, "kernel reported: "+crash.Line, crash
		return d
	case panicked(o.Events, now):
		d.Outcome, d.Reason = Crash, "guest panicked (pvpanic GUEST_PANICKED)"
		return d
	case o.QEMUExited != "":
		return d.infra("QEMU exited during the trial (%s)", o.QEMUExited)
	case len(o.Probes) == 0:
		return d
	}
	// The rules below judge at the last probe's time.
	last := o.Probes[len(o.Probes)-1]
	now = last.Host
	if last.Unreadable {
		return d.infra("unreadable guest probe: %s", last.Err)
	}
	if last.State == nil {
		failed, slow := 0, 0
		for i := len(o.Probes) - 1; i >= 0 && o.Probes[i].State == nil; i-- {
			failed++
			if o.Probes[i].Slow && failed <= maxProbeFailures {
				slow++
			}
		}
		switch {
		case failed >= maxProbeFailures && slow == 0:
			return d.infra("guest agent went silent after the removal (%d probes failed, last: %s)", failed, last.Err)
		case failed >= maxProbeFailures && now.Sub(o.Removal) > o.Scenario.Budget(o.Params):
			return d.infra("guest too slow to probe: %d probes in a row failed (the agent still ran them, the guest did not finish them in time), %s after the removal; last: %s",
				failed, now.Sub(o.Removal).Round(time.Second), last.Err)
		}
		return d
	}

	dev := o.Scenario.DeviceInfo()
	if dev == nil {
		return d.infra("scenario %s: unknown device %q", o.Scenario.Name, o.Scenario.Device)
	}
	stallWindow, hangAfter, budget := o.Params.StallWindow, o.Scenario.HangAfterFor(o.Params), o.Scenario.Budget(o.Params)

	// Replay the answered probes: I/O progress, the D-state watches, the
	// stall they add up to, and how long the guest has been quiet.
	path := removalPathPattern(o.Scenario.Removal)
	var stall *Stall
	var lastProgress time.Time
	var lastProgressUp Duration = -1
	lastCompletions := ""
	watch := map[int]*Watch{}
	var quietSince time.Time
	t0Seen, pathSeen := false, false
	lineIdx := 0
	var st *GuestState
	for _, p := range o.Probes {
		for ; lineIdx < len(console) && !console[lineIdx].Time.After(p.Host); lineIdx++ {
			// As ReadGuestTimes: the path counts after the trigger's T0.
			_, text, ok := printkStamp(console[lineIdx].Item)
			switch {
			case !ok:
			case !t0Seen:
				t0Seen = strings.Contains(text, TriggerMarker+" ")
			case path.MatchString(text):
				pathSeen = true
			}
		}
		if p.State == nil {
			continue
		}
		st = p.State
		if st.Completions != lastCompletions || lastProgressUp < 0 {
			lastCompletions, lastProgress, lastProgressUp = st.Completions, p.Host, st.Uptime
		}
		for pid := range watch {
			if _, still := st.DTasks[pid]; !still {
				delete(watch, pid)
			}
		}
		for pid, t := range st.DTasks {
			if slices.Contains(timedSleeps, t.WChan) {
				delete(watch, pid) // it runs again when its timer fires
				continue
			}
			w, ok := watch[pid]
			if !ok || w.Ctxt != t.CtxtSwitches[1] {
				// New in D state, or it ran since the last probe.
				watch[pid] = &Watch{Host: p.Host, Uptime: st.Uptime, Ctxt: t.CtxtSwitches[1], Probes: 1}
				continue
			}
			w.Probes++
		}
		stall = trackStall(stall, p.Host, st, watch, lastProgress, lastProgressUp, stallWindow, pathSeen)
		quiet := !st.DevicePresent && st.Trigger != "running" && len(st.DTasks) == 0 && p.RemovalDone && p.RemovalErr == "" && pathSeen
		switch {
		case !quiet:
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = p.Host
		}
	}

	if !pathSeen && now.Sub(o.Removal) > o.Params.RemovalProof {
		return d.infra("the guest never logged the %s removal path (%s) within %s of the removal: the removal did not reach the guest's pciehp",
			o.Scenario.Removal, path, o.Params.RemovalProof)
	}
	if !quietSince.IsZero() && now.Sub(quietSince) >= o.Params.Settle {
		if stall != nil && time.Duration(stall.Host) >= o.Params.RecoveredAfter && time.Duration(stall.Guest) >= o.Params.RecoveredAfter {
			return d.recovered(console, dev, stall)
		}
		return d.settled(o)
	}
	ioStalled := now.Sub(lastProgress) >= hangAfter && st.Uptime-lastProgressUp >= Duration(hangAfter)
	var stuck []int
	for pid, w := range watch {
		w.GuestClock, w.HostClock = time.Duration(st.Uptime-w.Uptime), now.Sub(w.Host)
		if w.HostClock >= hangAfter && w.GuestClock >= hangAfter && w.Probes >= minStallProbes {
			stuck = append(stuck, pid)
		}
	}
	if len(stuck) > 0 && ioStalled && pathSeen {
		sort.Ints(stuck)
		f := &HangFinding{Watches: map[int]Watch{}, IOStalled: now.Sub(lastProgress), IOStalledGuest: time.Duration(st.Uptime - lastProgressUp)}
		for _, pid := range stuck {
			t := st.DTasks[pid]
			t.CtxtSwitches[0] = watch[pid].Ctxt
			f.Stuck = append(f.Stuck, t)
			f.Watches[pid] = *watch[pid]
		}
		d.Outcome, d.Hang = Hang, f
		d.Reason = fmt.Sprintf("%d task(s) in D state did not run for %s of guest time, no I/O completed for %s (guest %s)",
			len(stuck), f.Watches[stuck[0]].GuestClock.Round(time.Millisecond), f.IOStalled.Round(time.Millisecond), f.IOStalledGuest.Round(time.Millisecond))
		return d
	}
	if now.Sub(o.Removal) > budget {
		return d.infra("no verdict %s after the removal (device present=%v, trigger %s, D tasks %d, last I/O progress %s ago)",
			budget, st.DevicePresent, st.Trigger, len(st.DTasks), now.Sub(lastProgress).Round(time.Millisecond))
	}
	return d
}

// trackStall extends, starts or ends the stall at one answered probe: a
// stall holds while some task has been unmoved in D state for the stall
// window on both clocks (seen by minStallProbes probes) and the disk's
// counters have not moved for as long, after the removal path was seen.
// An ended stall is kept (a later one replaces it).
func trackStall(s *Stall, at time.Time, st *GuestState, watch map[int]*Watch, lastProgress time.Time, lastProgressUp Duration, window time.Duration, pathSeen bool) *Stall {
	ioStalled := at.Sub(lastProgress) >= window && st.Uptime-lastProgressUp >= Duration(window)
	stuckPID := 0
	for pid, w := range watch {
		if at.Sub(w.Host) >= window && time.Duration(st.Uptime-w.Uptime) >= window && w.Probes >= minStallProbes && (stuckPID == 0 || pid < stuckPID) {
			stuckPID = pid
		}
	}
	holds := stuckPID != 0 && ioStalled && pathSeen
	switch {
	case holds && (s == nil || !s.Until.IsZero()):
		s = &Stall{Task: st.DTasks[stuckPID], Since: lastProgress, SinceUptime: lastProgressUp}
	case holds:
	case s != nil && s.Until.IsZero():
		s.Until = at
	default:
		return s
	}
	s.Host, s.Guest = Duration(at.Sub(s.Since)), st.Uptime-s.SinceUptime
	return s
}

// recovered decides RECOVERED once the guest settled after a stall.
func (d Decision) recovered(console []journal.Entry[string], dev *Device, s *Stall) Decision {
	r := *s
	r.RecoveryLine = dev.RecoveryLine(console)
	d.Outcome, d.Stall = Recovered, &r
	d.Reason = fmt.Sprintf("%s (pid %d) stalled in D state under %s with no I/O completing for %s, then every task left D state and the device was removed",
		r.Task.Comm, r.Task.PID, r.Task.WChan, time.Duration(r.Host).Round(100*time.Millisecond))
	if r.RecoveryLine != "" {
		d.Reason += "; recovery on the console: " + r.RecoveryLine
	} else {
		d.Reason += fmt.Sprintf("; %s logged no recovery line", dev.Name)
	}
	return d
}

// settled decides PASS or MISSED once the guest has been quiet for Settle.
func (d Decision) settled(o Observed) Decision {
	w := o.Window
	switch {
	case w == nil:
		d.NeedWindow = true
	case w.Samples == 0:
		// yank's own sampler failed: no proof either way.
		return d.infra("no window evidence: %s", w.Reason)
	case !w.Hit:
		d.Outcome, d.Reason = Missed, "the cut was not shown inside the "+o.Scenario.Name+" window: "+w.Reason
	default:
		d.Outcome, d.Reason = Pass, fmt.Sprintf("device removed, %s trigger finished, no task stuck", o.Scenario.Trigger)
	}
	return d
}

func (d Decision) infra(format string, args ...any) Decision {
	d.Outcome, d.Reason = InfraError, fmt.Sprintf(format, args...)
	return d
}

// upTo is the console up to now (all of it when now is zero).
func upTo(lines []journal.Entry[string], now time.Time) []journal.Entry[string] {
	if now.IsZero() {
		return lines
	}
	n := sort.Search(len(lines), func(i int) bool { return lines[i].Time.After(now) })
	return lines[:n]
}

func panicked(events []Event, now time.Time) bool {
	for _, e := range events {
		if e.Name == "GUEST_PANICKED" && (now.IsZero() || !e.Time.After(now)) {
			return true
		}
	}
	return false
}

// Classify picks the task that explains a hang and names it: the
// trigger's task under one of the device's remove waits (waits, e.g.
// del_gendisk) is "<trigger>-<fn>" ("unbind-del_gendisk"), else pciehp
// under one ("pciehp-del_gendisk", the no-unbind bug), else any task
// under one ("other-<fn>"), else the first stuck task ("other-d-state").
func Classify(tasks []Task, waits []string) (string, *Task) {
	under := func(t Task) string {
		for _, f := range t.Stack {
			for _, fn := range waits {
				if strings.HasPrefix(f, fn+"+") || f == fn {
					return fn
				}
			}
		}
		return ""
	}
	for i, t := range tasks {
		if trig, ok := strings.CutPrefix(t.Role, "trigger:"); ok && under(t) != "" {
			return trig + "-" + under(t), &tasks[i]
		}
	}
	for i, t := range tasks {
		if t.Role == "pciehp" && under(t) != "" {
			return "pciehp-" + under(t), &tasks[i]
		}
	}
	for i, t := range tasks {
		if fn := under(t); fn != "" {
			return "other-" + fn, &tasks[i]
		}
	}
	return "other-d-state", &tasks[0]
}

// Role names a stuck task's part in the trial: the trigger (its pid from
// the YANK-T0 marker), pciehp's worker, or other.
func Role(t Task, triggerPID int, trigger Trigger) string {
	switch {
	case t.PID == triggerPID:
		return "trigger:" + string(trigger)
	case strings.Contains(t.Comm, "pciehp"):
		return "pciehp"
	}
	return "other"
}

// HangReason is a HANG's reason once its primary task is known.
func HangReason(f *HangFinding, primary Task) string {
	w := f.Watches[primary.PID]
	return fmt.Sprintf("%s (pid %d) in D state under %s, did not run for %s of guest time (%d probes, context switches stuck at %d), no I/O completed for %s (guest %s)",
		primary.Comm, primary.PID, primary.WChan, w.GuestClock.Round(time.Millisecond), w.Probes,
		primary.CtxtSwitches[1], f.IOStalled.Round(time.Millisecond), f.IOStalledGuest.Round(time.Millisecond))
}

// HungTaskPID reads the pid from khungtaskd's "INFO: task x:PID blocked
// for more than N seconds".
func HungTaskPID(line string) (int, bool) {
	m := hungPattern.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	pid, err := strconv.Atoi(m[2])
	return pid, err == nil
}

// ParseProbe reads the probe script's answer (package trial's
// probeScript): "dev present|gone", "trig running|exited|none", "stat
// <the disk's /sys/block/D/stat>|none", "up <uptime>" and a "task PID
// CTXT WCHAN COMM" line per D-state task.
func ParseProbe(out string) (GuestState, error) {
	st := GuestState{DTasks: map[int]Task{}}
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		seen[f[0]] = true
		switch f[0] {
		case "dev":
			st.DevicePresent = f[1] == "present"
		case "trig":
			st.Trigger = f[1]
		case "stat":
			if f[1] != "none" && len(f) >= 10 {
				// reads completed, writes completed, in flight: fields that
				// only move with real progress (io_ticks grows while stuck).
				st.Completions = f[1] + "/" + f[5] + "/" + f[9]
			}
		case "up":
			secs, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return st, fmt.Errorf("probe: bad uptime %q", f[1])
			}
			st.Uptime = Duration(secs * float64(time.Second))
		case "task":
			// task PID CTXT WCHAN COMM...
			if len(f) < 5 {
				continue
			}
			pid, err1 := strconv.Atoi(f[1])
			ctxt, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			t := Task{PID: pid, State: "D", WChan: f[3], Comm: strings.Join(f[4:], " ")}
			t.CtxtSwitches[1] = ctxt
			st.DTasks[pid] = t
		}
	}
	for _, k := range []string{"dev", "trig", "stat", "up"} {
		if !seen[k] {
			return st, fmt.Errorf("probe output lacks %q: %q", k, out)
		}
	}
	return st, nil
}

// removalPathPattern is the console line that proves the guest took the
// removal path the scenario asked for.
func removalPathPattern(r Removal) *regexp.Regexp {
	if r == RemovalGraceful {
		return buttonPathPattern
	}
	return surprisePathPattern
}
