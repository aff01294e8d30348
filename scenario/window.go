package scenario

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/journal"
)

// Window is what must hold in the guest at the cut for a trial to test
// anything (scenarios.json). A PASS whose cut landed outside it is MISSED.
type Window struct {
	// Trigger: "running" (started and not finished), "removing" (running
	// inside the device driver's remove(): with one of the device's
	// remove_waits in its stack, Scenario.WindowWant) or "" (any state).
	Trigger string `json:"trigger,omitempty"`
	// TriggerIn: the trigger's kernel stack (/proc/PID/stack) holds one of
	// these functions, e.g. ["del_gendisk"].
	TriggerIn []string `json:"trigger_in,omitempty"`
	// IO: "outstanding" (dirty or writeback pages, or requests in
	// flight), "idle" (none) or "" (any).
	IO string `json:"io,omitempty"`
	// Device: "bound" (present with its driver bound) or "" (any).
	Device string `json:"device,omitempty"`
	// EndLine is a console line (a regular expression) the guest logs
	// when the trigger starts the window's last step (virtio-scsi:
	// "Synchronizing SCSI cache", its flush). Logged after the cut, it
	// proves the trigger had not got past the window at the cut. "removing"
	// takes the device's remove_end_line when this is empty.
	EndLine string `json:"end_line,omitempty"`
}

var kernelSymbol = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// Window values.
const (
	WindowRunning     = "running"
	WindowRemoving    = "removing"
	WindowOutstanding = "outstanding"
	WindowIdle        = "idle"
	WindowBound       = "bound"
)

// OutstandingKB is how many kB of Dirty + Writeback pages count as
// writeback outstanding (the load leaves ~48 MiB; an idle guest < 100 kB).
const OutstandingKB = 512

// MaxSampleGap: a sample further than this before the cut does not prove
// the guest's state at the cut. The sampler runs every ~60 ms.
const MaxSampleGap = 300 * time.Millisecond

func (w Window) validate() error {
	switch w.Trigger {
	case "", WindowRunning, WindowRemoving:
	default:
		return fmt.Errorf("window.trigger %q: want \"running\", \"removing\" or nothing", w.Trigger)
	}
	switch w.IO {
	case "", WindowOutstanding, WindowIdle:
	default:
		return fmt.Errorf("window.io %q: want \"outstanding\", \"idle\" or nothing", w.IO)
	}
	switch w.Device {
	case "", WindowBound:
	default:
		return fmt.Errorf("window.device %q: want \"bound\" or nothing", w.Device)
	}
	for _, f := range w.TriggerIn {
		// The sampler matches these as shell patterns: a name only.
		if !kernelSymbol.MatchString(f) {
			return fmt.Errorf("window.trigger_in %q: want a kernel function name", f)
		}
	}
	if len(w.TriggerIn) > 0 && w.Trigger != WindowRunning {
		return fmt.Errorf("window.trigger_in needs window.trigger \"running\" (\"removing\" takes its functions from the device)")
	}
	if w.EndLine != "" {
		if w.Trigger == "" {
			return fmt.Errorf("window.end_line needs window.trigger \"running\" or \"removing\": it marks the trigger's progress")
		}
		if _, err := regexp.Compile(w.EndLine); err != nil {
			return fmt.Errorf("window.end_line %q: want a regular expression (Go syntax): %v", w.EndLine, err)
		}
	}
	return nil
}

// stackOnly: the window rests on where the trigger is (its stack) with
// no outstanding I/O to show that it stays there. Outstanding I/O drains
// through the 2 MiB/s throttle, so a sample that saw it holds for the
// sampler's gap; a stack can change between two looks (nvme's freeze
// wait ends when the last request completes, virtio-scsi's flush takes
// 3 ms), so the trigger must be seen there after the cut as well.
func (w Window) stackOnly() bool { return len(w.TriggerIn) > 0 && w.IO != WindowOutstanding }

func (w Window) String() string {
	var p []string
	if w.Trigger != "" {
		p = append(p, "trigger "+w.Trigger)
	}
	if len(w.TriggerIn) > 0 {
		p = append(p, "under "+strings.Join(w.TriggerIn, "|"))
	}
	if w.IO != "" {
		p = append(p, "I/O "+w.IO)
	}
	if w.Device != "" {
		p = append(p, "device "+w.Device)
	}
	if len(p) == 0 {
		return "anything"
	}
	return strings.Join(p, ", ")
}

// Sample is one look of the in-guest sampler (sampler.go), logged as a
// YANK-S line through /dev/kmsg so it shares the printk clock with YANK-T0
// and pciehp's messages.
type Sample struct {
	Seq       int      `json:"seq"`
	GuestTime Duration `json:"guest_time"` // printk stamp
	Trigger   string   `json:"trigger"`    // none, running, exited
	In        string   `json:"in"`         // the first window function in the trigger's stack, "-" for none, "?" when unreadable
	WChan     string   `json:"wchan"`
	DirtyKB   int64    `json:"dirty_kb"`
	WriteKB   int64    `json:"writeback_kb"`
	InFlight  string   `json:"inflight"` // reads/writes from /sys/block/D/inflight, "-" once gone
	Device    string   `json:"device"`   // bound, present, gone
}

func (s Sample) String() string {
	return fmt.Sprintf("#%d at %s: trigger %s in %s (wchan %s), dirty %d kB, writeback %d kB, in flight %s, device %s",
		s.Seq, time.Duration(s.GuestTime), s.Trigger, s.In, s.WChan, s.DirtyKB, s.WriteKB, s.InFlight, s.Device)
}

// outstanding: writeback pending or requests in flight.
func (s Sample) outstanding() bool {
	if s.DirtyKB+s.WriteKB >= OutstandingKB {
		return true
	}
	r, w, ok := strings.Cut(s.InFlight, "/")
	return ok && (r != "0" || w != "0")
}

// WindowEvidence is the guest's state around the cut.
type WindowEvidence struct {
	Want   Window  `json:"want"`
	Hit    bool    `json:"hit"`
	Reason string  `json:"reason"`
	Before *Sample `json:"before,omitempty"` // the last sample before the cut
	After  *Sample `json:"after,omitempty"`  // the first sample after it
	// First is the sampler's first look, taken before the trigger's T0:
	// the guest the trial started from (trials restored from one
	// snapshot show the same figures here).
	First *Sample `json:"first,omitempty"`
	// Gap is the cut minus the before sample, on the guest clock.
	Gap     Duration `json:"gap"`
	Samples int      `json:"samples"`
	// Still is the first look after the cut that read the trigger's
	// stack, for a window on the trigger's stack alone: it must show the
	// trigger still inside (Window.stackOnly).
	Still *Sample `json:"still,omitempty"`
	// End is when the window's end line was logged (guest clock).
	End *Duration `json:"end,omitempty"`
}

// StaleLook says the window was not shown because the sampler's last
// look before the cut was too old (a starved guest): the trial tested
// nothing, and running it again may.
func (e *WindowEvidence) StaleLook() bool {
	return e != nil && !e.Hit && time.Duration(e.Gap) > MaxSampleGap
}

// CutAt places the cut on the guest clock, with what the console says
// about the trigger around it (CutFacts reads them).
type CutAt struct {
	// Cut is the host's cut mapped through T0 (GuestTimes.Cut): off by a
	// few ms either way (T0's serial latency, the stop's round trip).
	Cut time.Duration
	// Latest is when the cut happened at the latest: pciehp's removal
	// line for a surprise cut (the guest cannot log it before), else Cut.
	// What must come after the cut to prove the window held (T1, the end
	// line, the look that finds the trigger still inside) must come
	// after Latest.
	Latest time.Duration
	// T1 is when the trigger's action returned (YANK-T1), 0 if it did not.
	T1 time.Duration
	// End is when the window's end line (EndText) was logged after T0,
	// 0 if it was not.
	End     time.Duration
	EndText string
	// T0 is the trigger's YANK-T0 stamp.
	T0 time.Duration
	// Anchor is an anchored cut's hit (nil: a timed cut).
	Anchor *AnchorFact
}

// AnchorFact is an anchored cut's breakpoint stop as the window sees it:
// a look at the guest that caught a vCPU entering Symbol (at its address)
// at Hit on the guest clock. With Delay 0 the cut was made while every
// vCPU stood there.
type AnchorFact struct {
	Symbol string
	Hit    time.Duration
	Delay  time.Duration
}

// AnchorT0Slack is how far before T0 a hit may map and still count as
// after it: both go through T0's serial latency (a few ms).
const AnchorT0Slack = 20 * time.Millisecond

// CutFacts reads a CutAt off the guest times and the console (printk-
// stamped lines); ok is false when the cut cannot be placed (no T0).
func CutFacts(g GuestTimes, w Window, console []journal.Entry[string]) (CutAt, bool) {
	if g.Cut == nil {
		return CutAt{}, false
	}
	c := CutAt{Cut: time.Duration(*g.Cut)}
	c.Latest = c.Cut
	if g.Removal != nil && time.Duration(*g.Removal) > c.Cut {
		c.Latest = time.Duration(*g.Removal)
	}
	if g.T1 != nil {
		c.T1 = time.Duration(*g.T1)
	}
	if g.T0 != nil {
		c.T0 = time.Duration(*g.T0)
	}
	if w.EndLine == "" {
		return c, true
	}
	end := regexp.MustCompile(w.EndLine) // validated with the scenario
	c.End, c.EndText, _ = firstAfterT0(console, end.MatchString)
	return c, true
}

// firstAfterT0 is the first printk-stamped console line after the
// trigger's YANK-T0 marker whose text match accepts, with its stamp.
func firstAfterT0(console []journal.Entry[string], match func(text string) bool) (time.Duration, string, bool) {
	t0 := false
	for _, l := range console {
		stamp, text, ok := printkStamp(l.Item)
		switch {
		case !ok:
		case !t0:
			t0 = strings.Contains(text, TriggerMarker+" ")
		case match(text):
			return stamp, text, true
		}
	}
	return 0, "", false
}

func (e *WindowEvidence) String() string {
	hit := "missed"
	if e.Hit {
		hit = "hit"
	}
	return fmt.Sprintf("%s (want %s): %s", hit, e.Want, e.Reason)
}

// JudgeWindow decides whether the cut landed inside w, from the samples
// (any order) and the console's facts around the cut. The last sample
// before the cut must show the window's state; what could have changed
// since must be shown not to have: a trigger the window needs running
// must return after the cut (T1), and a window on the trigger's stack
// alone must still hold after the cut (a later look with the trigger
// still there, or the window's end line logged after the cut). Pure:
// table-tested in window_test.go.
func JudgeWindow(w Window, samples []Sample, at CutAt) *WindowEvidence {
	cut := at.Cut
	e := &WindowEvidence{Want: w, Samples: len(samples)}
	if at.End > 0 {
		end := Duration(at.End)
		e.End = &end
	}
	ss := slices.Clone(samples)
	slices.SortFunc(ss, func(a, b Sample) int { return int(a.GuestTime - b.GuestTime) })
	for i := range ss {
		if time.Duration(ss[i].GuestTime) < cut {
			e.Before = &ss[i]
		} else if e.After == nil {
			e.After = &ss[i]
		}
	}
	if len(ss) > 0 {
		e.First = &ss[0]
	}
	b := e.Before
	switch {
	case len(ss) == 0:
		e.Reason = "the guest sampler reported nothing: the state at the cut is unknown"
		return e
	case b == nil:
		e.Reason = "no guest sample before the cut: the state at the cut is unknown"
		return e
	}
	e.Gap = Duration(cut - time.Duration(b.GuestTime))
	// A running task's /proc/PID/stack reads empty ("?"): the stack
	// evidence is then the last one read, if it is recent enough.
	stackAt := b
	if len(w.TriggerIn) > 0 && b.In == "?" {
		for i := len(ss) - 1; i >= 0; i-- {
			s := &ss[i]
			if time.Duration(s.GuestTime) >= cut || s.In == "?" {
				continue
			}
			if s.Trigger == "running" && cut-time.Duration(s.GuestTime) <= MaxSampleGap {
				stackAt = s
			}
			break
		}
	}
	// An anchor stands in for the look at the trigger's stack when it is
	// one of the window's functions; a window that names none (the
	// trigger merely running) is judged from T0 and T1 around the hit.
	if an := at.Anchor; an != nil && (len(w.TriggerIn) == 0 || slices.Contains(w.TriggerIn, an.Symbol)) {
		return e.judgeAnchored(ss, at, b)
	}
	if time.Duration(e.Gap) > MaxSampleGap {
		e.Reason = fmt.Sprintf("the last guest sample was %s before the cut (more than %s): the state at the cut is unknown",
			time.Duration(e.Gap).Round(time.Millisecond), MaxSampleGap)
		return e
	}
	since := fmt.Sprintf("%s before the cut", time.Duration(e.Gap).Round(time.Millisecond))
	switch {
	case w.Trigger == WindowRunning && b.Trigger == "none":
		e.Reason = since + ", the trigger had not started"
	case w.Trigger == WindowRunning && b.Trigger != "running":
		e.Reason = since + ", the trigger had already finished"
		if at.T1 > 0 && at.T1 <= cut {
			e.Reason += fmt.Sprintf(" (it returned %s before the cut, YANK-T1 at %s)", (cut - at.T1).Round(time.Millisecond), at.T1)
		}
	case w.Trigger == WindowRunning && at.T1 > 0 && at.T1 <= at.Latest:
		// The sampler saw it running, but it returned before its next look.
		e.Reason = fmt.Sprintf("%s, the trigger was still running, but it returned %s before the cut (YANK-T1 at %s)",
			since, (cut - at.T1).Round(time.Millisecond), at.T1)
		if at.T1 > cut {
			e.Reason = fmt.Sprintf("%s, the trigger was still running, but it returned (YANK-T1 at %s) before the guest saw the removal at %s: not proven running at the cut",
				since, at.T1, at.Latest)
		}
	case len(w.TriggerIn) > 0 && stackAt.In == "?":
		e.Reason = fmt.Sprintf("%s, the trigger's stack could not be read (running) and no recent sample read it", since)
	case len(w.TriggerIn) > 0 && !slices.Contains(w.TriggerIn, stackAt.In):
		e.Reason = fmt.Sprintf("%s, the trigger was not under %s (wchan %s)", since, strings.Join(w.TriggerIn, "|"), b.WChan)
	case w.IO == WindowOutstanding && !b.outstanding():
		e.Reason = fmt.Sprintf("%s, no I/O was outstanding (dirty %d kB, writeback %d kB, in flight %s)", since, b.DirtyKB, b.WriteKB, b.InFlight)
	case w.IO == WindowIdle && b.outstanding():
		e.Reason = fmt.Sprintf("%s, the disk was not idle (dirty %d kB, writeback %d kB, in flight %s)", since, b.DirtyKB, b.WriteKB, b.InFlight)
	case w.Device == WindowBound && b.Device != "bound":
		e.Reason = fmt.Sprintf("%s, the device was %s, not bound to its driver", since, b.Device)
	default:
		e.Reason = fmt.Sprintf("%s %s: %s", w, since, b)
		if stackAt != b {
			e.Reason += fmt.Sprintf(" (stack from #%d, %s before the cut)", stackAt.Seq, (cut - time.Duration(stackAt.GuestTime)).Round(time.Millisecond))
		}
		if !w.stackOnly() {
			e.Hit = true
			return e
		}
		e.Hit, e.Reason = e.stillInside(ss, at, stackAt)
	}
	return e
}

// judgeAnchored judges a cut anchored at one of the window's functions,
// or at any function in a window that names none (the trigger running,
// proven by T0 before the hit and T1 after the removal). At one of the
// window's functions the breakpoint's stop stands in for the look at
// the trigger's stack:
// a vCPU was entering the function at the hit. With no delay the cut was
// made during that stop, so the trigger was there at the cut; with a
// delay it must be shown still inside after the cut (stillInside), as a
// timed cut must. The rest is judged as for a timed cut: the trigger
// started (T0) and had not returned before the guest saw the removal
// (T1), and the last look before the cut shows the I/O and device the
// window needs.
func (e *WindowEvidence) judgeAnchored(ss []Sample, at CutAt, b *Sample) *WindowEvidence {
	w, an := e.Want, at.Anchor
	delay := "cut while the guest stood there"
	if an.Delay > 0 {
		delay = fmt.Sprintf("cut %s later", an.Delay)
	}
	hit := fmt.Sprintf("anchored: a vCPU hit %s %s after T0, %s", an.Symbol, (an.Hit - at.T0).Round(time.Millisecond), delay)
	if an.Hit < at.T0-AnchorT0Slack {
		hit = fmt.Sprintf("anchored: %s was hit %s before the trigger's T0", an.Symbol, (at.T0 - an.Hit).Round(time.Millisecond))
	}
	since := fmt.Sprintf("%s before the cut", time.Duration(e.Gap).Round(time.Millisecond))
	switch {
	case an.Hit < at.T0-AnchorT0Slack:
		e.Reason = hit + ": not the trigger's hit"
	case at.T1 > 0 && at.T1 <= at.Latest:
		e.Reason = fmt.Sprintf("%s, but the trigger returned (YANK-T1 at %s) before the guest saw the removal at %s: not proven running at the cut", hit, at.T1, at.Latest)
	case (w.IO != "" || w.Device != "") && time.Duration(e.Gap) > MaxSampleGap:
		e.Reason = fmt.Sprintf("%s, but the last guest sample was %s before the cut (more than %s): the I/O and device at the cut are unknown",
			hit, time.Duration(e.Gap).Round(time.Millisecond), MaxSampleGap)
	case w.IO == WindowOutstanding && !b.outstanding():
		e.Reason = fmt.Sprintf("%s, but %s no I/O was outstanding (dirty %d kB, writeback %d kB, in flight %s)", hit, since, b.DirtyKB, b.WriteKB, b.InFlight)
	case w.IO == WindowIdle && b.outstanding():
		e.Reason = fmt.Sprintf("%s, but %s the disk was not idle (dirty %d kB, writeback %d kB, in flight %s)", hit, since, b.DirtyKB, b.WriteKB, b.InFlight)
	case w.Device == WindowBound && b.Device != "bound":
		e.Reason = fmt.Sprintf("%s, but %s the device was %s, not bound to its driver", hit, since, b.Device)
	default:
		e.Reason = fmt.Sprintf("%s: %s; %s: %s", w, hit, since, b)
		if an.Delay == 0 {
			e.Hit = true
			return e
		}
		if !w.stackOnly() {
			e.Hit = true // T1 after the removal: still running; the I/O was looked at
			return e
		}
		entered := &Sample{Seq: 0, GuestTime: Duration(an.Hit), Trigger: "running", In: an.Symbol, WChan: "(anchor hit)"}
		e.Hit, e.Reason = e.stillInside(ss, at, entered)
	}
	return e
}

// stillInside proves that a window on the trigger's stack alone held at
// the cut: the window's end line was logged after the cut, or the first
// look after it that read the trigger's stack (a running task's often
// reads empty) still finds the trigger under one of the window's
// functions (a removal path enters them once, so it was there all along).
func (e *WindowEvidence) stillInside(ss []Sample, at CutAt, before *Sample) (bool, string) {
	w := e.Want
	if at.End > at.Latest {
		return true, fmt.Sprintf("%s; the window's end (%q) was logged %s after the cut", e.Reason, at.EndText, (at.End - at.Cut).Round(time.Millisecond))
	}
	for i := range ss {
		s := &ss[i]
		if time.Duration(s.GuestTime) <= at.Latest || s.In == "?" {
			continue
		}
		e.Still = s
		after := (time.Duration(s.GuestTime) - at.Cut).Round(time.Millisecond)
		if slices.Contains(w.TriggerIn, s.In) {
			return true, fmt.Sprintf("%s; still under %s %s after the cut (#%d)", e.Reason, s.In, after, s.Seq)
		}
		why := fmt.Sprintf("the trigger was under %s %s before the cut (#%d) but had left it %s after (#%d: trigger %s, wchan %s)",
			before.In, (at.Cut - time.Duration(before.GuestTime)).Round(time.Millisecond), before.Seq, after, s.Seq, s.Trigger, s.WChan)
		switch {
		case at.End > 0 && at.End <= at.Cut:
			why += fmt.Sprintf(", and the window's end (%q) was logged %s before the cut", at.EndText, (at.Cut - at.End).Round(time.Millisecond))
		case at.End > 0:
			why += fmt.Sprintf(", and the window's end (%q) was logged before the guest saw the removal", at.EndText)
		}
		return false, why + ": it may have left before the cut"
	}
	return false, fmt.Sprintf("the trigger was under %s %s before the cut (#%d), and no later look read its stack: whether it was still there at the cut is unknown",
		before.In, (at.Cut - time.Duration(before.GuestTime)).Round(time.Millisecond), before.Seq)
}

var samplePattern = regexp.MustCompile(`YANK-S n=(\d+) trig=(\S+) in=(\S+) wchan=(\S+) dirty=(\d+) wb=(\d+) inflight=(\S+) dev=(\S+)`)

// ParseSamples reads YANK-S lines (dmesg output, or console lines of
// trials recorded before the samples left the console).
func ParseSamples(lines []string) []Sample {
	var out []Sample
	for _, l := range lines {
		stamp, text, ok := printkStamp(l)
		if !ok {
			continue
		}
		m := samplePattern.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		dirty, _ := strconv.ParseInt(m[5], 10, 64)
		wb, _ := strconv.ParseInt(m[6], 10, 64)
		out = append(out, Sample{Seq: n, GuestTime: Duration(stamp), Trigger: m[2], In: m[3],
			WChan: m[4], DirtyKB: dirty, WriteKB: wb, InFlight: m[7], Device: m[8]})
	}
	return out
}

var printkStampPattern = regexp.MustCompile(`^\[\s*(\d+)\.(\d{6})\]\s?(.*)$`)

// printkStamp splits "[   12.345678] text" into the guest time and text.
func printkStamp(line string) (time.Duration, string, bool) {
	m := printkStampPattern.FindStringSubmatch(line)
	if m == nil {
		return 0, line, false
	}
	sec, err1 := strconv.ParseInt(m[1], 10, 64)
	us, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, line, false
	}
	return time.Duration(sec)*time.Second + time.Duration(us)*time.Microsecond, m[3], true
}

// Console lines that mark the removal path in the guest
// (drivers/pci/hotplug/pciehp_ctrl.c).
var (
	surprisePathPattern = regexp.MustCompile(`pciehp: Slot\(\S+\): (Card not present|Link Down)`)
	// 6.1 logs "Powering off due to button press" at the press; 6.12
	// logs "Button press: will power off in 5 sec" then, and its
	// "Powering off" line only 5 s later.
	buttonPathPattern = regexp.MustCompile(`pciehp: Slot\(\S+\): (Powering off due to button press|Button press: will power off in)`)
	t1Pattern         = regexp.MustCompile(`YANK-T1 rc=(\d+)`)
)

// TriggerMarker is printed to /dev/kmsg right before the trigger's
// action ("YANK-T0 trigger=unbind pid=N"), so time zero comes from the
// console, not from the agent's exec; "YANK-T1 rc=N" follows the action.
const TriggerMarker = "YANK-T0"

// MarkerPID reads the pid from a "YANK-T0 trigger=x pid=N" line.
func MarkerPID(line string) (int, bool) {
	_, rest, ok := strings.Cut(line, "pid=")
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	return pid, err == nil && pid > 0
}

// ReadGuestTimes reads the milestones' printk stamps off the console. hostCut
// is the host time of the cut (zero: no removal yet).
func ReadGuestTimes(lines []journal.Entry[string], removal Removal, hostCut time.Time) GuestTimes {
	var g GuestTimes
	var t0Host time.Time
	dur := func(d time.Duration) *Duration { v := Duration(d); return &v }
	path := removalPathPattern(removal)
	for _, l := range lines {
		stamp, text, ok := printkStamp(l.Item)
		if !ok {
			continue
		}
		switch {
		case g.T0 == nil && strings.Contains(text, TriggerMarker+" "):
			g.T0, t0Host = dur(stamp), l.Time
		case g.T0 != nil && g.T1 == nil && t1Pattern.MatchString(text):
			rc, _ := strconv.Atoi(t1Pattern.FindStringSubmatch(text)[1])
			g.T1, g.TriggerRC = dur(stamp), &rc
		case g.T0 != nil && g.Removal == nil && path.MatchString(text):
			g.Removal, g.RemovalLine = dur(stamp), text
		}
	}
	if g.T0 == nil {
		return g
	}
	g.T0Host = t0Host
	if !hostCut.IsZero() {
		// T0's serial latency makes this estimate late by up to a few ms;
		// the guest cannot log a surprise removal before the cut.
		cut := time.Duration(*g.T0) + hostCut.Sub(t0Host)
		if g.Removal != nil && removal == RemovalSurprise {
			cut = min(cut, time.Duration(*g.Removal))
		}
		g.Cut = dur(cut)
	}
	if g.Removal != nil {
		g.Offset = dur(time.Duration(*g.Removal) - time.Duration(*g.T0))
	}
	type ev struct {
		name string
		at   *Duration
	}
	var evs []ev
	for _, e := range []ev{{"T0", g.T0}, {"cut", g.Cut}, {"removal seen", g.Removal}, {"T1", g.T1}} {
		if e.at != nil {
			evs = append(evs, e)
		}
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return int(*a.at - *b.at) })
	var names []string
	for _, e := range evs {
		names = append(names, e.name)
	}
	g.Order = strings.Join(names, " < ")
	return g
}
