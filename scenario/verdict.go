package scenario

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Outcome is a trial's verdict class.
type Outcome string

const (
	Pass       Outcome = "PASS"        // device gone, trigger done, no task stuck
	Hang       Outcome = "HANG"        // a task stuck in D state with no I/O progress
	Crash      Outcome = "CRASH"       // oops, BUG or panic on the console
	InfraError Outcome = "INFRA-ERROR" // yank could not run or judge the trial
	// Missed: the cut landed outside the scenario's window (the trigger
	// had finished or not started, nothing was outstanding), so the trial
	// tested nothing. It replaces a PASS, never a HANG or a CRASH.
	Missed Outcome = "MISSED"
	// Recovered: a task stalled in D state with no I/O progress (as a
	// HANG does), then every stuck task left D state and the guest
	// settled before the device's hang horizon (Device.HangAfter): the
	// driver's timeout handling got it out. Not a PASS (there was a
	// stall), not a HANG (it ended).
	Recovered Outcome = "RECOVERED"
)

// Unreached: the cut was anchored to a guest event (Params.Anchor) that
// did not come within the anchor budget, so no cut was made and nothing
// was tested: not MISSED (that is a cut outside the window), never PASS.
const Unreached Outcome = "UNREACHED"

// Outcomes lists every outcome, in the order reports show them.
var Outcomes = []Outcome{Hang, Recovered, Pass, Missed, Unreached, Crash, InfraError}

// Tested reports whether the outcome says something about the kernel:
// MISSED and INFRA-ERROR do not.
func (o Outcome) Tested() bool { return o == Pass || o == Hang || o == Crash || o == Recovered }

// Verdict is a trial's result with the evidence summarized. Its JSON form
// is written to verdict.json in the trial's artifacts dir.
type Verdict struct {
	Outcome  Outcome `json:"outcome"`
	Reason   string  `json:"reason"`
	Scenario string  `json:"scenario"`
	Kernel   string  `json:"kernel"`

	RequestedOffset Duration `json:"requested_offset"`
	// AchievedOffset is host time of the cut (or device_del) minus host
	// time the trigger's marker reached the console.
	AchievedOffset Duration `json:"achieved_offset"`
	// DetectionLatency is from the removal to the verdict.
	DetectionLatency Duration `json:"detection_latency"`

	// Hang details: Classification is "<trigger>-<fn>" (the trigger's
	// task under one of the device's remove waits, "unbind-del_gendisk"),
	// "pciehp-<fn>", "other-<fn>" or "other-d-state" (Classify).
	Classification string       `json:"classification,omitempty"`
	StuckTask      *Task        `json:"stuck_task,omitempty"`
	Stuck          []Task       `json:"stuck,omitempty"`
	HungTaskReport bool         `json:"hung_task_report"` // khungtaskd confirmed on the console
	Crash          *ConsoleHit  `json:"crash,omitempty"`
	Warnings       []ConsoleHit `json:"warnings,omitempty"`

	// Anchor is an anchored cut's breakpoint and its hit (nil: timed).
	Anchor *AnchorHit `json:"anchor,omitempty"`
	// Window is the guest's state at the cut, from the sampler, and
	// whether it was inside the scenario's window.
	Window *WindowEvidence `json:"window,omitempty"`
	// Guest holds printk times (guest clock since boot) of the trial's
	// milestones and the trigger's exit status.
	Guest GuestTimes `json:"guest"`
	// HangProof is the guest-side evidence behind a HANG.
	HangProof *HangProof `json:"hang_proof,omitempty"`
	// Stall is the stall a RECOVERED trial recovered from.
	Stall *Stall `json:"stall,omitempty"`
	// Device is the disk kind the trial removed (devices.json), IOTimeout
	// the driver's I/O timeout the trial set (0: it has none) and
	// HangAfter the stall a HANG needed (Device.HangAfter, or the
	// scenario's hang_after).
	Device    string   `json:"device,omitempty"`
	IOTimeout Duration `json:"io_timeout,omitempty"`
	HangAfter Duration `json:"hang_after,omitempty"`

	Params    Params       `json:"params"`
	Timeline  Timeline     `json:"timeline"`
	Artifacts string       `json:"artifacts,omitempty"`
	Started   time.Time    `json:"started"`
	Duration  Duration     `json:"duration"`
	Accel     string       `json:"accel,omitempty"`
	Removal   *RemovalInfo `json:"removal,omitempty"`
	// Start says how the guest came to the trigger: booted cold, or
	// restored from a snapshot saved right before it.
	Start *Start `json:"start,omitempty"`
	// StalledBoot is why the trial's first boot failed when it stalled
	// (not ready by its deadline, QEMU's state and vCPUs at the end) and
	// the guest was booted again; empty when the first boot came up.
	StalledBoot string `json:"stalled_boot,omitempty"`
}

// Start is how a trial's guest came to its trigger.
type Start struct {
	Kind StartKind `json:"kind"`
	// Snapshot is the snapshot's key (its dir in the cache's snapshots/).
	Snapshot string `json:"snapshot,omitempty"`
	// Made: this trial booted the guest that was saved, then restored it.
	Made bool `json:"made,omitempty"`
	// Fallback says why a trial that wanted a snapshot booted cold.
	Fallback string `json:"fallback,omitempty"`
	// Took is from the start of the boot or restore until the guest was
	// ready for the trigger (set up and loaded).
	Took Duration `json:"took"`
}

// StartKind is "cold" or "snapshot".
type StartKind string

const (
	StartCold     StartKind = "cold"
	StartSnapshot StartKind = "snapshot"
)

func (s *Start) String() string {
	switch {
	case s.Kind == StartSnapshot && s.Made:
		return fmt.Sprintf("snapshot %s, made by this trial (ready %s after the restore)", s.Snapshot, time.Duration(s.Took).Round(time.Millisecond))
	case s.Kind == StartSnapshot:
		return fmt.Sprintf("snapshot %s (ready %s after the restore)", s.Snapshot, time.Duration(s.Took).Round(time.Millisecond))
	case s.Fallback != "":
		return fmt.Sprintf("cold boot (ready after %s), no snapshot: %s", time.Duration(s.Took).Round(time.Millisecond), s.Fallback)
	}
	return fmt.Sprintf("cold boot (ready after %s)", time.Duration(s.Took).Round(time.Millisecond))
}

// AnchorHit records an anchored cut: where the breakpoint was, which hit
// cut, and when (host times; HitGuest on the guest clock through T0).
type AnchorHit struct {
	Spec       string `json:"spec"`       // as given: "del_gendisk", "blk_execute_rq@2"
	Symbol     string `json:"symbol"`     // the function
	Address    string `json:"address"`    // the breakpoint's kernel virtual address (nokaslr)
	Symbols    string `json:"symbols"`    // the System.map or vmlinux it was read from
	Breakpoint string `json:"breakpoint"` // "software" (TCG) or "hardware" (KVM)
	Hit        int    `json:"hit"`        // the hit that cut (@N)
	Hits       int    `json:"hits"`       // hits after T0 (fewer than Hit: UNREACHED)
	// Early is how many hits came before the trigger's T0: the function
	// ran for something else (writeback, the sampler), so the breakpoint
	// was lifted until T0.
	Early int `json:"early,omitempty"`
	// Delay is the cut's delay after the hit (0: cut while the guest
	// stood at the anchor).
	Delay Duration  `json:"delay"`
	Armed time.Time `json:"armed"` // breakpoint in place, before the trigger started
	// HitHost is when the hit's stop reached yank; SinceT0 is that minus
	// T0's arrival (the hit's offset as a timed cut would have named it).
	HitHost time.Time `json:"hit_host,omitempty"`
	SinceT0 Duration  `json:"since_t0,omitempty"`
	// HitGuest is the hit on the guest clock (through T0, as the cut).
	HitGuest *Duration `json:"hit_guest,omitempty"`
	Thread   string    `json:"thread,omitempty"` // the vCPU that hit, as the stub names it
	// Resumed is when the guest ran again; Paused = Resumed - HitHost
	// (with no delay: the stop, the cut and the resume).
	Resumed time.Time `json:"resumed,omitempty"`
	Paused  Duration  `json:"paused,omitempty"`
}

// GuestTimes are console printk stamps (guest clock since boot) of the
// trial's milestones. Nil: the line never appeared.
type GuestTimes struct {
	T0 *Duration `json:"t0,omitempty"` // YANK-T0: right before the trigger's action
	// T0Host is when the T0 line reached the host (to map guest times).
	T0Host time.Time `json:"-"`
	// Cut is the host's cut mapped to the guest clock through T0 (host
	// arrival of T0 minus its printk stamp).
	Cut *Duration `json:"cut,omitempty"`
	T1  *Duration `json:"t1,omitempty"` // YANK-T1: the trigger's action returned
	// TriggerRC is the action's exit status (an unbind that failed is
	// flagged in the verdict's reason).
	TriggerRC *int `json:"trigger_rc,omitempty"`
	// Removal is the guest noticing the removal: pciehp's "Card not
	// present" (surprise) or "Powering off due to button press"
	// (graceful), with the line.
	Removal     *Duration `json:"removal,omitempty"`
	RemovalLine string    `json:"removal_line,omitempty"`
	// Offset is Removal - T0: the offset as the guest saw it.
	Offset *Duration `json:"offset,omitempty"`
	// Order lists the milestones by guest time ("T0 < removal < T1").
	Order string `json:"order,omitempty"`
}

// Task is a guest task seen through /proc.
type Task struct {
	PID   int      `json:"pid"`
	Comm  string   `json:"comm"`
	State string   `json:"state"`
	WChan string   `json:"wchan"`
	Role  string   `json:"role"` // trigger, pciehp, or other
	Stack []string `json:"stack,omitempty"`
	// StackError says why /proc/PID/stack could not be read (Stack is
	// then empty).
	StackError string `json:"stack_error,omitempty"`
	// CtxtSwitches is voluntary + involuntary context switches from
	// /proc/PID/status at the first and the last probe that saw the task
	// in D state: equal means it never ran in between.
	CtxtSwitches [2]int64 `json:"ctxt_switches"`
}

// HangProof is what the guest itself showed across the stall window.
type HangProof struct {
	// GuestClock is how far the guest's own clock (/proc/uptime) moved
	// between the first and the last probe of the window.
	GuestClock Duration `json:"guest_clock"`
	HostClock  Duration `json:"host_clock"`
	Probes     int      `json:"probes"` // probes answered inside the window
	// CtxtSwitchesUnchanged: the stuck task did not run during the window.
	CtxtSwitchesUnchanged bool `json:"ctxt_switches_unchanged"`
	// IOUnchanged: the disk's completion and in-flight counters did not
	// move.
	IOUnchanged bool `json:"io_unchanged"`
	// HungTaskReport: khungtaskd reported the task (kernel/hung_task.c
	// checks the same switch count over hung_task_timeout_secs).
	HungTaskReport bool `json:"hung_task_report"`
}

// ConsoleHit is a console line that matters (oops, BUG, WARN, panic) with
// the lines after it.
type ConsoleHit struct {
	Kind string    `json:"kind"`
	Line string    `json:"line"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// RemovalInfo describes the removal as the host performed it.
type RemovalInfo struct {
	Kind string `json:"kind"`
	Port string `json:"port,omitempty"`
	// Stopped is when the vCPUs were paused for the cut (surprise) or
	// device_del was sent (graceful): the guest ran nothing after it
	// before the cut. The window is judged at this instant.
	Stopped time.Time `json:"stopped"`
	Issued  time.Time `json:"issued"`
	Deleted time.Time `json:"deleted,omitempty"`
	// Resumed is when yank let the vCPUs run again after a timed cut
	// (zero for an anchored one: the anchor's Resumed says).
	Resumed time.Time `json:"resumed,omitempty"`
	// Queues is a virtio device's virtqueues as QEMU saw them inside the
	// cut's stop, before the power-off: the host's own count of the
	// requests the device held (the sampler's "in flight" is the
	// guest's). QueuesError says why they could not be read.
	Queues      []QueueAtCut `json:"queues,omitempty"`
	QueuesError string       `json:"queues_error,omitempty"`
}

// QueueAtCut is one virtqueue at the cut: InUse requests taken from the
// ring and not completed.
type QueueAtCut struct {
	Index int `json:"index"`
	InUse int `json:"inuse"`
}

// Held is how many requests the device held at the cut, over its queues.
func (r *RemovalInfo) Held() int {
	n := 0
	for _, q := range r.Queues {
		n += q.InUse
	}
	return n
}

// Timeline holds the host times of the trial's milestones.
type Timeline struct {
	Boot      time.Time `json:"boot"`
	Ready     time.Time `json:"ready"`
	LoadDone  time.Time `json:"load_done"`
	Trigger   time.Time `json:"trigger"` // marker seen on the console
	Removal   time.Time `json:"removal"`
	Decided   time.Time `json:"decided"`
	Completed time.Time `json:"completed"`
}

// MarshalJSON keeps durations readable.
func (p Params) MarshalJSON() ([]byte, error) {
	type plain Params
	return json.Marshal(struct {
		plain
		Offset, StallWindow, Settle, Budget, ProbeInterval, RemovalProof, IOTimeout, RecoveredAfter, AnchorBudget string
	}{plain(p), p.Offset.String(), p.StallWindow.String(), p.Settle.String(), p.Budget.String(), p.ProbeInterval.String(), p.RemovalProof.String(), p.IOTimeout.String(), p.RecoveredAfter.String(), p.AnchorBudget.String()})
}

// UnmarshalJSON reads what MarshalJSON writes, so verdict.json decodes
// back into a Verdict.
func (p *Params) UnmarshalJSON(b []byte) error {
	type plain Params
	var aux struct {
		plain
		Offset, StallWindow, Settle, Budget, ProbeInterval, RemovalProof, IOTimeout, RecoveredAfter, AnchorBudget string
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*p = Params(aux.plain)
	for _, f := range []struct {
		s string
		d *time.Duration
	}{{aux.Offset, &p.Offset}, {aux.StallWindow, &p.StallWindow}, {aux.Settle, &p.Settle}, {aux.Budget, &p.Budget}, {aux.ProbeInterval, &p.ProbeInterval}, {aux.RemovalProof, &p.RemovalProof}, {aux.IOTimeout, &p.IOTimeout}, {aux.RecoveredAfter, &p.RecoveredAfter}, {aux.AnchorBudget, &p.AnchorBudget}} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil {
			return fmt.Errorf("params: %w", err)
		}
		*f.d = d
	}
	return nil
}

// Summary is a one-line description for tables.
func (v Verdict) Summary() string {
	switch v.Outcome {
	case Hang:
		if v.StuckTask != nil {
			return fmt.Sprintf("%s: %s (pid %d) in %s", v.Classification, v.StuckTask.Comm, v.StuckTask.PID, v.StuckTask.WChan)
		}
		return v.Classification
	case Crash:
		if v.Crash != nil {
			return v.Crash.Line
		}
	case Missed:
		if v.Window != nil {
			return "not tested: " + v.Window.Reason
		}
	case Recovered:
		if v.Stall != nil {
			return fmt.Sprintf("stalled %s, then recovered", time.Duration(v.Stall.Host).Round(100*time.Millisecond))
		}
	}
	return v.Reason
}

// String is a multi-line human report.
func (v Verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s on %s, offset %s (achieved %s)\n", v.Outcome, v.Scenario, v.Kernel, v.RequestedOffset, v.AchievedOffset)
	fmt.Fprintf(&b, "  %s\n", v.Reason)
	if v.StuckTask != nil {
		fmt.Fprintf(&b, "  stuck: %s pid %d (%s) wchan %s\n", v.StuckTask.Comm, v.StuckTask.PID, v.StuckTask.Role, v.StuckTask.WChan)
		for _, f := range v.StuckTask.Stack {
			fmt.Fprintf(&b, "    %s\n", f)
		}
	}
	if v.Stall != nil && v.Stall.RecoveryLine != "" {
		fmt.Fprintf(&b, "  recovery: %s\n", v.Stall.RecoveryLine)
	}
	if v.Window != nil {
		fmt.Fprintf(&b, "  window: %s\n", v.Window)
	}
	if v.Start != nil {
		fmt.Fprintf(&b, "  start: %s\n", v.Start)
	}
	if v.Crash != nil {
		fmt.Fprintf(&b, "  %s\n", strings.ReplaceAll(v.Crash.Text, "\n", "\n  "))
	}
	if v.Artifacts != "" {
		fmt.Fprintf(&b, "  artifacts: %s\n", v.Artifacts)
	}
	return b.String()
}
