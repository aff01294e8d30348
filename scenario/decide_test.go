package scenario

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/journal"
)

// A synthetic trial for the rules: the removal at t0, a probe every
// 250 ms whose guest clock keeps pace with the host's unless a case says
// otherwise.
var t0 = time.Date(2026, 12, 1, 0, 0, 10, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// console is a guest console with T0 before the removal and, unless
// noPath, pciehp's surprise-removal line 100 ms after it; extra lines are
// appended at the given times.
func console(noPath bool, extra ...journal.Entry[string]) []journal.Entry[string] {
	j := journal.New[string]()
	j.AppendAt(at(-2000), "[    3.000000] YANK-T0 trigger=unbind pid=68")
	if !noPath {
		j.AppendAt(at(100), "[    5.100000] pciehp 0000:00:02.0: pciehp: Slot(0): Card not present")
	}
	for _, e := range extra {
		j.AppendAt(e.Time, e.Item)
	}
	return j.Snapshot()
}

func line(ms int, s string) journal.Entry[string] {
	return journal.Entry[string]{Time: at(ms), Item: s}
}

// stuck is the unbind task in D state with a fixed switch count.
func stuck(ctxt int64) map[int]Task {
	return map[int]Task{68: {PID: 68, Comm: "sh", State: "D", WChan: "blk_mq_get_tag", CtxtSwitches: [2]int64{0, ctxt}}}
}

// probes makes n probes from +250 ms on, every 250 ms, with the guest
// clock advancing guestStep per probe; state(i) gives each one's state.
func probes(n int, guestStep time.Duration, state func(i int) GuestState) []Probe {
	var out []Probe
	for i := 0; i < n; i++ {
		st := state(i)
		st.Uptime = Duration(5*time.Second + time.Duration(i+1)*guestStep)
		out = append(out, Probe{Host: at(250 * (i + 1)), State: &st, RemovalDone: true})
	}
	return out
}

func hung(int) GuestState {
	return GuestState{DevicePresent: false, Trigger: "running", Completions: "1/711/4", DTasks: stuck(510)}
}

func quiet(int) GuestState { return GuestState{Trigger: "exited"} }

// stallThenQuiet is a task stuck for the first stalled probes, then a
// guest that settled, n probes in all.
func stallThenQuiet(stalled, quietProbes int) []Probe {
	return probes(stalled+quietProbes, 250*time.Millisecond, func(i int) GuestState {
		if i < stalled {
			return hung(i)
		}
		return quiet(i)
	})
}

// nvmeObserved is observed on the nvme unbind-race.
func nvmeObserved(ps []Probe, c []journal.Entry[string]) Observed {
	o := observed(ps, c)
	o.Scenario, _ = Lookup("nvme-unbind-race")
	return o
}

// ruleParams are the knobs the rule cases were written for (the defaults
// of their day: a 3 s stall window, 1 s settle, a probe every 250 ms), so
// the cases keep testing the rules when the defaults change.
var ruleParams = Params{StallWindow: 3 * time.Second, Settle: time.Second, ProbeInterval: 250 * time.Millisecond}.WithDefaults()

func observed(ps []Probe, c []journal.Entry[string]) Observed {
	sc, _ := Lookup("unbind-race")
	return Observed{Scenario: sc, Params: ruleParams, Removal: t0, CutStopped: t0, Probes: ps, Console: c}
}

func TestDecideRules(t *testing.T) {
	p := ruleParams // StallWindow 3 s, Settle 1 s, RemovalProof 5 s, Budget 90 s
	failed := func(ms int) Probe { return Probe{Host: at(ms), Err: "guest-exec: timeout"} }
	slowed := func(ms int) Probe {
		return Probe{Host: at(ms), Err: "guestagent: waiting for guest pid 98: not exited after 2.739s", Slow: true}
	}
	hit := &WindowEvidence{Samples: 40, Hit: true, Reason: "trigger in del_gendisk at the cut"}
	for _, tc := range []struct {
		name   string
		o      Observed
		want   Outcome
		window bool // want NeedWindow
		reason string
	}{
		{"no probe yet", observed(nil, console(false)), "", false, ""},
		{"an oops beats everything", observed(probes(20, 250*time.Millisecond, quiet), console(false,
			line(900, "[    5.900000] BUG: kernel NULL pointer dereference, address: 0000000000000008"))), Crash, false, "kernel reported: BUG: kernel NULL pointer dereference"},
		{"an oops after the last probe does not count yet", func() Observed {
			return observed(probes(2, 250*time.Millisecond, hung), console(false, line(9000, "[   14.000000] Oops: 0000 [#1] SMP")))
		}(), "", false, ""},
		{"GUEST_PANICKED", func() Observed {
			o := observed(probes(2, 250*time.Millisecond, hung), console(false))
			o.Events = []Event{{Time: at(300), Name: "GUEST_PANICKED"}}
			return o
		}(), Crash, false, "guest panicked"},
		{"QEMU exited", func() Observed {
			o := observed(probes(2, 250*time.Millisecond, hung), console(false))
			o.QEMUExited = "signal: killed"
			return o
		}(), InfraError, false, "QEMU exited during the trial (signal: killed)"},
		{"unreadable probe is yank's bug", observed([]Probe{{Host: at(250), Err: `probe output lacks "up"`, Unreadable: true}}, console(false)), InfraError, false, "unreadable guest probe"},
		{"two failed probes: keep probing", observed(append(probes(2, 250*time.Millisecond, hung), failed(750), failed(1000)), console(false)), "", false, ""},
		{"three failed probes: silent agent", observed(append(probes(2, 250*time.Millisecond, hung), failed(750), failed(1000), failed(1250)), console(false)), InfraError, false, "guest agent went silent"},
		// The agent ran the probes but the guest did not finish them in
		// time (a guest failing 40 MB of writes after the cut, two guests
		// on 2 cores): slow, not silent; keep probing until the budget.
		{"three slow probes: keep probing", observed(append(probes(2, 250*time.Millisecond, hung), slowed(3750), slowed(6750), slowed(9750)), console(false)), "", false, ""},
		{"one slow among three failed: not silent", observed(append(probes(2, 250*time.Millisecond, hung), failed(750), slowed(3750), failed(4000)), console(false)), "", false, ""},
		{"slow probes past the budget: too slow to probe", observed(append(probes(2, 250*time.Millisecond, hung), slowed(88000), slowed(91000), slowed(94000)), console(false)), InfraError, false, "guest too slow to probe: 3 probes in a row failed"},
		{"stuck 3 s on both clocks: HANG", observed(probes(13, 250*time.Millisecond, hung), console(false)), Hang, false, "did not run for 3s of guest time"},
		{"stuck 2.75 s: not yet", observed(probes(12, 250*time.Millisecond, hung), console(false)), "", false, ""},
		{"a starved guest's clock did not move 3 s: no HANG", observed(probes(40, 50*time.Millisecond, hung), console(false)), "", false, ""},
		{"the task ran: the watch restarts", observed(probes(13, 250*time.Millisecond, func(i int) GuestState {
			s := hung(i)
			s.DTasks = stuck(510 + int64(i/7)) // ran once, at probe 7
			return s
		}), console(false)), "", false, ""},
		{"I/O completes: no HANG", observed(probes(20, 250*time.Millisecond, func(i int) GuestState {
			s := hung(i)
			s.Completions = "1/" + string(rune('a'+i%26)) + "/4"
			return s
		}), console(false)), "", false, ""},
		{"no removal path on the console: no HANG, and INFRA-ERROR after RemovalProof", observed(probes(21, 250*time.Millisecond, hung), console(true)), InfraError, false, "never logged the surprise removal path"},
		{"quiet 1 s: judge the window", observed(probes(5, 250*time.Millisecond, quiet), console(false)), "", true, ""},
		{"quiet 0.75 s: not settled", observed(probes(4, 250*time.Millisecond, quiet), console(false)), "", false, ""},
		{"quiet, window hit: PASS", func() Observed {
			o := observed(probes(5, 250*time.Millisecond, quiet), console(false))
			o.Window = hit
			return o
		}(), Pass, false, "device removed, unbind trigger finished, no task stuck"},
		{"quiet, window missed: MISSED", func() Observed {
			o := observed(probes(5, 250*time.Millisecond, quiet), console(false))
			o.Window = &WindowEvidence{Samples: 40, Hit: false, Reason: "trigger had exited at the cut"}
			return o
		}(), Missed, false, "the cut was not shown inside the unbind-race window: trigger had exited at the cut"},
		{"quiet, sampler saw nothing: INFRA-ERROR", func() Observed {
			o := observed(probes(5, 250*time.Millisecond, quiet), console(false))
			o.Window = &WindowEvidence{Reason: "no samples"}
			return o
		}(), InfraError, false, "no window evidence: no samples"},
		{"quiet but the host's removal failed: no PASS", observed(func() []Probe {
			ps := probes(8, 250*time.Millisecond, quiet)
			for i := range ps {
				ps[i].RemovalErr = "DEVICE_DELETED not seen"
			}
			return ps
		}(), console(false)), "", false, ""},
		{"neither: INFRA-ERROR after the budget", observed(probes(int(p.Budget/(250*time.Millisecond))+1, 250*time.Millisecond, func(i int) GuestState {
			return GuestState{DevicePresent: true, Trigger: "running", Completions: "1/" + string(rune('a'+i%26)) + "/4"}
		}), console(false)), InfraError, false, "no verdict 1m30s after the removal"},
		// nvme (io_timeout 5 s by default): a stall is a HANG only past
		// StallWindow + 2 x 5 s = 13 s; one that ends first is RECOVERED.
		{"nvme stuck 3 s: not a HANG yet (the I/O timeout may fire)", nvmeObserved(probes(13, 250*time.Millisecond, hung), console(false)), "", false, ""},
		{"nvme stuck 13 s on both clocks: HANG", nvmeObserved(probes(53, 250*time.Millisecond, hung), console(false)), Hang, false, "did not run for 13s of guest time"},
		{"nvme stuck 12.75 s: not yet", nvmeObserved(probes(52, 250*time.Millisecond, hung), console(false)), "", false, ""},
		{"nvme stalled 6 s, then the timeout disabled the controller: RECOVERED", nvmeObserved(stallThenQuiet(24, 5), console(false,
			line(6000, "[   11.000000] nvme nvme0: I/O 3 QID 1 timeout, disable controller"))), Recovered, false,
			"sh (pid 68) stalled in D state under blk_mq_get_tag with no I/O completing for 6s, then every task left D state and the device was removed; recovery on the console: nvme nvme0: I/O 3 QID 1 timeout, disable controller"},
		{"nvme stalled, recovered with no recovery line: RECOVERED, says so", nvmeObserved(stallThenQuiet(24, 5), console(false)), Recovered, false, "nvme logged no recovery line"},
		{"stalled 2.75 s (under StallWindow), then quiet: no stall, judge the window", nvmeObserved(stallThenQuiet(11, 5), console(false)), "", true, ""},
		{"nvme's 13 s horizon fits the 90 s budget: INFRA-ERROR after 90 s", nvmeObserved(probes(int(p.Budget/(250*time.Millisecond))+1, 250*time.Millisecond, func(i int) GuestState {
			return GuestState{DevicePresent: true, Trigger: "running", Completions: "1/" + string(rune('a'+i%26)) + "/4"}
		}), console(false)), InfraError, false, "no verdict 1m30s after the removal"},
		{"hang_after 100 s: still probing at 91 s", func() Observed {
			o := nvmeObserved(probes(364, 250*time.Millisecond, hung), console(false))
			o.Scenario.HangAfter = Duration(100 * time.Second)
			return o
		}(), "", false, ""},
		{"hang_after 100 s: HANG once the stall outlasts it", func() Observed {
			o := nvmeObserved(probes(401, 250*time.Millisecond, hung), console(false))
			o.Scenario.HangAfter = Duration(100 * time.Second)
			return o
		}(), Hang, false, "did not run for 1m40s of guest time"},
		{"hang_after 100 s: the budget is 130 s", func() Observed {
			o := nvmeObserved(probes(521, 250*time.Millisecond, func(i int) GuestState {
				return GuestState{DevicePresent: true, Trigger: "running", Completions: "1/" + string(rune('a'+i%26)) + "/4"}
			}), console(false))
			o.Scenario.HangAfter = Duration(100 * time.Second)
			return o
		}(), InfraError, false, "no verdict 2m10s after the removal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.o)
			if d.Outcome != tc.want || d.NeedWindow != tc.window || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("got %q window=%v %q; want %q window=%v containing %q", d.Outcome, d.NeedWindow, d.Reason, tc.want, tc.window, tc.reason)
			}
			if d.Outcome == Recovered && (d.Stall == nil || d.Stall.Task.PID != 68 || d.Stall.Until.IsZero() || d.Stall.Guest < Duration(p.StallWindow)) {
				t.Fatalf("stall: %+v", d.Stall)
			}
			if d.Outcome == Hang && (len(d.Hang.Stuck) != 1 || d.Hang.Stuck[0].PID != 68 || d.Hang.Watches[68].Probes < minStallProbes) {
				t.Fatalf("hang finding: %+v", d.Hang)
			}
		})
	}
}

// TestDecideStallProbeByProbe: the same stall, decided after every probe
// as a trial does, is a HANG at 3 s on virtio-blk (no I/O timeout) and
// RECOVERED on nvme, whose horizon it never reaches.
func TestDecideStallProbeByProbe(t *testing.T) {
	ps := stallThenQuiet(24, 6)
	for _, tc := range []struct {
		o    Observed
		want Outcome
		at   int // the probe it is decided at
	}{
		{observed(nil, console(false)), Hang, 13},
		{nvmeObserved(nil, console(false)), Recovered, 29},
	} {
		got, at := Outcome(""), 0
		for i := 1; i <= len(ps) && got == ""; i++ {
			tc.o.Probes = ps[:i]
			got, at = Decide(tc.o).Outcome, i
		}
		if got != tc.want || at != tc.at {
			t.Errorf("%s: got %s at probe %d, want %s at probe %d", tc.o.Scenario.Name, got, at, tc.want, tc.at)
		}
	}
}

// TestDecideReplaysRecordedTrials feeds real trials' observations
// (testdata/trials/*/probes.jsonl with their console and QMP events,
// recorded by e2e runs) to Decide probe by probe: it must stay undecided
// until the last recorded probe and then decide what the trial decided.
func TestDecideReplaysRecordedTrials(t *testing.T) {
	files, _ := filepath.Glob("testdata/trials/*/probes.jsonl")
	seen := map[Outcome]int{}
	for _, f := range files {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			v := recorded(t, dir)
			sc, err := Lookup(v.Scenario)
			if err != nil {
				t.Fatal(err)
			}
			ps := readJSONL[Probe](t, f)
			o := Observed{Scenario: sc, Params: v.Params, Removal: v.Timeline.Removal, CutStopped: v.Removal.Stopped,
				Console: loadConsoleLog(t, filepath.Join(dir, "console.log")), Events: readJSONL[Event](t, filepath.Join(dir, "events.jsonl"))}
			for i := 1; i <= len(ps); i++ {
				o.Probes, o.Window = ps[:i], nil
				d := Decide(o)
				if d.NeedWindow {
					g := ReadGuestTimes(o.Console, sc.Removal, o.CutStopped)
					at, _ := CutFacts(g, sc.WindowWant(), o.Console)
					o.Window = JudgeWindow(sc.WindowWant(), ParseSamples(samplesOf(t, dir, o.Console)), at)
					d = Decide(o)
				}
				if d.Outcome == "" {
					continue
				}
				if i != len(ps) || d.Outcome != v.Outcome {
					t.Fatalf("decided %s at probe %d of %d; the trial decided %s at the last", d.Outcome, i, len(ps), v.Outcome)
				}
				seen[d.Outcome]++
				switch d.Outcome {
				case Hang:
					if len(d.Hang.Stuck) != len(v.Stuck) {
						t.Fatalf("stuck: %+v, recorded %+v", d.Hang.Stuck, v.Stuck)
					}
					if got := HangReason(d.Hang, *v.StuckTask); got != v.Reason {
						t.Fatalf("reason:\n got %s\nwant %s", got, v.Reason)
					}
				default:
					if d.Reason != v.Reason {
						t.Fatalf("reason:\n got %s\nwant %s", d.Reason, v.Reason)
					}
				}
				return
			}
			t.Fatalf("no decision after all %d probes; the trial decided %s", len(ps), v.Outcome)
		})
	}
	for _, o := range []Outcome{Hang, Pass, Missed, Recovered} {
		if seen[o] == 0 {
			t.Errorf("no recorded %s trial replayed (have %v)", o, seen)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v)
	}
	return out
}

// replayUndecided loads a recorded false HANG (testdata/undecided/*/README)
// and checks it is one: the recorded verdict says HANG with a 1 s stall
// window.
func replayUndecided(t *testing.T, dir string) (Observed, []Probe) {
	t.Helper()
	var v Verdict
	readJSON(t, filepath.Join(dir, "verdict.json"), &v)
	sc, err := Lookup(v.Scenario)
	if err != nil {
		t.Fatal(err)
	}
	ps := readJSONL[Probe](t, filepath.Join(dir, "probes.jsonl"))
	o := Observed{Scenario: sc, Params: v.Params, Removal: v.Timeline.Removal, CutStopped: v.Removal.Stopped,
		Console: loadConsoleLog(t, filepath.Join(dir, "console.log")), Events: readJSONL[Event](t, filepath.Join(dir, "events.jsonl"))}
	if v.Outcome != Hang || v.Params.StallWindow != time.Second {
		t.Fatalf("the recording is not the false HANG it is kept for: %s, stall window %s", v.Outcome, v.Params.StallWindow)
	}
	return o, ps
}

// noHangAtAnyProbe decides o probe by probe: none may be a HANG.
func noHangAtAnyProbe(t *testing.T, o Observed, ps []Probe) {
	t.Helper()
	for i := 1; i <= len(ps); i++ {
		o.Probes = ps[:i]
		if d := Decide(o); d.Outcome == Hang {
			t.Fatalf("probe %d of %d: HANG: %s", i, len(ps), d.Reason)
		}
	}
}

// TestDecideTimedSleepIsNoHang replays a fixed kernel's trial that a 1 s
// stall window once called HANG: pciehp sleeping in msleep is not stuck,
// so no probe may decide HANG.
func TestDecideTimedSleepIsNoHang(t *testing.T) {
	o, ps := replayUndecided(t, "testdata/undecided/fixed-unbind-race-2s-pciehp-msleep")
	noHangAtAnyProbe(t, o, ps)
	// Without the timed-sleep rule the same probes are a HANG: the test
	// can fail.
	saved := timedSleeps
	timedSleeps = nil
	defer func() { timedSleeps = saved }()
	o.Probes = ps
	if d := Decide(o); d.Outcome != Hang {
		t.Fatalf("without the timed-sleep rule the recording decides %q, not the HANG it recorded", d.Outcome)
	}
}

// TestDecideThrottleGapIsNoHang replays a graceful-io trial that a 1 s
// stall window called HANG while the device was present and the write
// throttle held its requests back: a graceful removal's horizon includes
// the throttle's drain (2.5 s), so no probe may decide HANG.
func TestDecideThrottleGapIsNoHang(t *testing.T) {
	o, ps := replayUndecided(t, "testdata/undecided/stock-6.12-graceful-io-throttle-gap")
	if got := o.Scenario.HangAfterFor(o.Params); got != 3500*time.Millisecond {
		t.Fatalf("graceful-io's hang horizon %s, want 3.5s (1 s window + 4 x 1.25 MiB at 2 MiB/s)", got)
	}
	noHangAtAnyProbe(t, o, ps)
	// Unthrottled, the horizon is the stall window again and the same
	// probes are the HANG they recorded: the test can fail.
	o.Params.ThrottleBps = -1
	o.Probes = ps
	if d := Decide(o); d.Outcome != Hang {
		t.Fatalf("with no throttle drain the recording decides %q, not the HANG it recorded", d.Outcome)
	}
}

// TestDecideShortStallIsNoRecovery: with the default 1 s stall window a
// 2 s pause during an nvme removal meets the stall proof but is shorter
// than RecoveredAfter (3 s): the settled guest is a PASS (the window
// judges it), while a 4 s stall that ends is RECOVERED; -recovered-after
// moves that line both ways.
func TestDecideShortStallIsNoRecovery(t *testing.T) {
	for _, tc := range []struct {
		stalled        int // probes, 250 ms apart
		recoveredAfter time.Duration
		want           Outcome
	}{{8, 0, ""}, {16, 0, Recovered}, {8, 1500 * time.Millisecond, Recovered}, {16, 5 * time.Second, ""}} {
		o := nvmeObserved(stallThenQuiet(tc.stalled, 6), console(false))
		o.Params = Detection{RecoveredAfter: tc.recoveredAfter}.Apply(Params{}).WithDefaults()
		d := Decide(o)
		if d.Outcome != tc.want || (tc.want == "" && !d.NeedWindow) {
			t.Errorf("%d stalled probes, recovered-after %s: %q (needs window %v), want %q%s", tc.stalled, tc.recoveredAfter, d.Outcome, d.NeedWindow, tc.want, map[bool]string{true: " and the window judged"}[tc.want == ""])
		}
	}
}
