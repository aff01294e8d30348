package scenario

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/journal"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func sample(at time.Duration, trig, in string, dirty int64, inflight, dev string) Sample {
	return Sample{GuestTime: Duration(at), Trigger: trig, In: in, WChan: "x", DirtyKB: dirty, InFlight: inflight, Device: dev}
}

func TestJudgeWindow(t *testing.T) {
	unbind := Window{Trigger: WindowRunning, TriggerIn: []string{"del_gendisk"}, IO: WindowOutstanding}
	idle := Window{IO: WindowIdle, Device: WindowBound}
	inDG := sample(ms(3000), "running", "del_gendisk", 45000, "0/4", "present")
	for _, tc := range []struct {
		name    string
		w       Window
		samples []Sample
		cut     time.Duration
		hit     bool
		reason  string // substring
	}{
		{"in del_gendisk with writeback", unbind, []Sample{sample(ms(2900), "running", "-", 46000, "0/4", "bound"), inDG}, ms(3020), true, "20ms before the cut"},
		{"after sample ignored", unbind, []Sample{inDG, sample(ms(3100), "exited", "-", 0, "-", "gone")}, ms(3050), true, ""},
		{"trigger finished", unbind, []Sample{sample(ms(32000), "exited", "-", 0, "0/0", "bound")}, ms(32020), false, "already finished"},
		{"not started", unbind, []Sample{sample(ms(1000), "none", "-", 46000, "0/0", "bound")}, ms(1050), false, "had not started"},
		{"not yet in del_gendisk", unbind, []Sample{sample(ms(2010), "running", "-", 46000, "0/0", "bound")}, ms(2040), false, "not under del_gendisk"},
		{"running, stack from the sample before", unbind, []Sample{inDG, sample(ms(3060), "running", "?", 45000, "0/4", "present")}, ms(3080), true, "stack from #0"},
		{"running, stack too old", unbind, []Sample{sample(ms(2500), "running", "del_gendisk", 45000, "0/4", "present"),
			sample(ms(3060), "running", "?", 45000, "0/4", "present")}, ms(3080), false, "could not be read"},
		{"running, earlier stack elsewhere", unbind, []Sample{sample(ms(3000), "running", "-", 45000, "0/4", "present"),
			sample(ms(3060), "running", "?", 45000, "0/4", "present")}, ms(3080), false, "not under del_gendisk"},
		{"nothing outstanding", unbind, []Sample{sample(ms(5000), "running", "del_gendisk", 100, "0/0", "bound")}, ms(5010), false, "no I/O was outstanding"},
		{"in flight counts as outstanding", unbind, []Sample{sample(ms(5000), "running", "del_gendisk", 0, "0/1", "bound")}, ms(5010), true, ""},
		{"stale sample", unbind, []Sample{inDG}, ms(3400), false, "more than 300ms"},
		{"no sample before", unbind, []Sample{inDG}, ms(2000), false, "no guest sample before"},
		{"no samples", unbind, nil, ms(2000), false, "reported nothing"},
		{"idle control", idle, []Sample{sample(ms(1990), "none", "-", 20, "0/0", "bound")}, ms(2000), true, ""},
		{"idle control, busy disk", idle, []Sample{sample(ms(1990), "none", "-", 20, "0/3", "bound")}, ms(2000), false, "not idle"},
		{"idle control, unbound", idle, []Sample{sample(ms(1990), "none", "-", 0, "0/0", "present")}, ms(2000), false, "not bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := JudgeWindow(tc.w, tc.samples, CutAt{Cut: tc.cut, Latest: tc.cut})
			if e.Hit != tc.hit || !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("hit=%v reason=%q, want hit=%v reason containing %q", e.Hit, e.Reason, tc.hit, tc.reason)
			}
			if e.Samples != len(tc.samples) {
				t.Errorf("samples %d", e.Samples)
			}
			// Only the stale look is one a starved guest may do better on.
			if stale := tc.name == "stale sample"; e.StaleLook() != stale {
				t.Errorf("StaleLook %v, want %v (%s)", e.StaleLook(), stale, e.Reason)
			}
		})
	}
}

// TestJudgeWindowAfterTheCut: what the sample before the cut shows must
// still hold at the cut. A trigger that returned before the cut (or
// before the guest saw the removal) was not running; a window on the
// trigger's stack alone needs a look after the cut that finds it still
// there, or its end line logged after the cut.
func TestJudgeWindowAfterTheCut(t *testing.T) {
	freeze := Window{Trigger: WindowRunning, TriggerIn: []string{"blk_mq_freeze_queue_wait"}}
	scsi := Window{Trigger: WindowRunning, TriggerIn: []string{"blk_execute_rq", "del_gendisk"}, EndLine: "Synchronizing SCSI cache"}
	unbind := Window{Trigger: WindowRunning, TriggerIn: []string{"del_gendisk"}, IO: WindowOutstanding}
	inFreeze := func(at int) Sample { return sample(ms(at), "running", "blk_mq_freeze_queue_wait", 0, "-", "present") }
	cut := CutAt{Cut: ms(3300), Latest: ms(3303)}
	with := func(c CutAt, f func(*CutAt)) CutAt { f(&c); return c }
	for _, tc := range []struct {
		name    string
		w       Window
		samples []Sample
		at      CutAt
		hit     bool
		reason  string // substring
	}{
		{"returned before the cut", unbind, []Sample{sample(ms(3260), "running", "del_gendisk", 40000, "0/4", "present")},
			with(cut, func(c *CutAt) { c.T1 = ms(3290) }), false, "it returned 10ms before the cut (YANK-T1 at 3.29s)"},
		{"returned before the guest saw the removal", unbind, []Sample{sample(ms(3260), "running", "del_gendisk", 40000, "0/4", "present")},
			with(cut, func(c *CutAt) { c.T1 = ms(3302) }), false, "not proven running at the cut"},
		{"returned after the removal", unbind, []Sample{sample(ms(3260), "running", "del_gendisk", 40000, "0/4", "present")},
			with(cut, func(c *CutAt) { c.T1 = ms(3500) }), true, "40ms before the cut"},
		{"outstanding I/O holds: no look after needed", unbind, []Sample{sample(ms(3260), "running", "del_gendisk", 40000, "0/4", "present"), sample(ms(3320), "exited", "-", 0, "-", "gone")},
			cut, true, ""},
		{"still in the freeze wait after the cut", freeze, []Sample{inFreeze(3261), inFreeze(3322)}, cut, true, "still under blk_mq_freeze_queue_wait 22ms after the cut (#0)"},
		{"left the freeze wait by the next look", freeze, []Sample{inFreeze(3261), sample(ms(3322), "running", "-", 0, "-", "present")},
			with(cut, func(c *CutAt) { c.T1 = ms(3346) }), false, "but had left it 22ms after"},
		{"a look inside the cut's uncertainty proves nothing", freeze, []Sample{inFreeze(3261), inFreeze(3302)}, cut, false, "no later look read its stack"},
		{"an unreadable look is skipped", freeze, []Sample{inFreeze(3261), sample(ms(3322), "running", "?", 0, "-", "present"), inFreeze(3385)}, cut, true, "85ms after the cut"},
		{"end line after the cut", scsi, []Sample{sample(ms(3260), "running", "del_gendisk", 30000, "0/0", "present"), sample(ms(3320), "running", "?", 0, "-", "present")},
			with(cut, func(c *CutAt) {
				c.End, c.EndText = ms(3392), "sd 0:0:0:0: [sda] Synchronizing SCSI cache"
				c.T1 = ms(3420)
			}), true, "logged 92ms after the cut"},
		{"end line before the cut, flush still outstanding after it", scsi, []Sample{sample(ms(3260), "running", "del_gendisk", 0, "-", "present"), sample(ms(3320), "running", "blk_execute_rq", 0, "-", "present")},
			with(cut, func(c *CutAt) { c.End = ms(3290) }), true, "still under blk_execute_rq"},
		{"end line before the cut, trigger gone after", scsi, []Sample{sample(ms(3290), "running", "del_gendisk", 52, "-", "present"), sample(ms(3350), "exited", "-", 0, "-", "gone")},
			with(cut, func(c *CutAt) {
				c.End, c.EndText = ms(3297), "sd 0:0:0:0: [sda] Synchronizing SCSI cache"
				c.T1 = ms(3313)
			}), false, `the window's end ("sd 0:0:0:0: [sda] Synchronizing SCSI cache") was logged 3ms before the cut`},
		{"end line between the cut and the removal line proves nothing", scsi, []Sample{sample(ms(3290), "running", "del_gendisk", 52, "-", "present"), sample(ms(3350), "exited", "-", 0, "-", "gone")},
			with(cut, func(c *CutAt) {
				c.End, c.EndText = ms(3302), "sd 0:0:0:0: [sda] Synchronizing SCSI cache"
				c.T1 = ms(3313)
			}), false, "logged before the guest saw the removal: it may have left before the cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := JudgeWindow(tc.w, tc.samples, tc.at)
			if e.Hit != tc.hit || !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("hit=%v reason=%q, want hit=%v reason containing %q", e.Hit, e.Reason, tc.hit, tc.reason)
			}
		})
	}
}

func TestWindowValidate(t *testing.T) {
	for _, w := range []Window{
		{Trigger: "finished"}, {IO: "busy"}, {Device: "present"},
		{TriggerIn: []string{"del_gendisk"}},                             // needs trigger running
		{Trigger: WindowRunning, TriggerIn: []string{"rm -rf; x"}},       // not a function name
		{Trigger: WindowRunning, TriggerIn: []string{"del_gendisk+0x1"}}, // a frame, not a name
		{EndLine: "Synchronizing SCSI cache"},                            // needs a trigger to follow
		{Trigger: WindowRunning, EndLine: "sd (\\S+"},                    // not a regexp
	} {
		if err := w.validate(); err == nil {
			t.Errorf("accepted %+v", w)
		}
	}
	if _, err := LoadCatalog([]byte(`{"scenarios":[{"name":"x","trigger":"none","removal":"surprise","io":"none","window":{"trigger":"running"}}]}`)); err == nil {
		t.Error("accepted a running-trigger window on a scenario without a trigger")
	}
	for _, sc := range All() {
		if sc.Window.String() == "anything" {
			t.Errorf("scenario %s declares no window", sc.Name)
		}
	}
}

func entries(lines ...string) []journal.Entry[string] {
	j := journal.New[string]()
	for _, l := range lines {
		j.Append(l)
	}
	return j.Snapshot()
}

func lines(l ...string) []string { return l }

func TestParseSamples(t *testing.T) {
	got := ParseSamples(lines(
		"[    3.071930] YANK-S n=15 trig=running in=del_gendisk wchan=folio_wait_bit_common dirty=45824 wb=36 inflight=0/4 dev=present",
		"[    3.092830] pcieport 0000:00:02.0: pciehp: Slot(1): Card not present",
		"YANK-S n=16 trig=running in=- wchan=- dirty=1 wb=0 inflight=- dev=gone", // no stamp: not placeable
		"[    3.141545] YANK-S n=16 trig=exited in=- wchan=- dirty=0 wb=0 inflight=- dev=gone",
	))
	if len(got) != 2 {
		t.Fatalf("got %d samples: %+v", len(got), got)
	}
	s := got[0]
	if s.Seq != 15 || time.Duration(s.GuestTime) != 3071930*time.Microsecond || s.In != "del_gendisk" || s.DirtyKB != 45824 || s.WriteKB != 36 || s.InFlight != "0/4" || s.Device != "present" {
		t.Fatalf("sample %+v", s)
	}
	if !s.outstanding() || got[1].outstanding() {
		t.Errorf("outstanding: %v %v", s.outstanding(), got[1].outstanding())
	}
}

func TestGuestTimes(t *testing.T) {
	host := time.Date(2026, 12, 1, 21, 48, 44, 0, time.UTC)
	j := journal.New[string]()
	add := func(after time.Duration, line string) {
		j.AppendAt(host.Add(after), line)
	}
	add(0, "[    2.088751] YANK-T0 trigger=unbind pid=68")
	add(1005*time.Millisecond, "[    3.092830] pcieport 0000:00:02.0: pciehp: Slot(1): Card not present")
	add(1300*time.Millisecond, "[    3.352910] YANK-T1 rc=1")
	g := ReadGuestTimes(j.Snapshot(), RemovalSurprise, host.Add(1004*time.Millisecond))
	if g.T0 == nil || g.T1 == nil || g.Removal == nil || g.Cut == nil || g.TriggerRC == nil {
		t.Fatalf("missing milestones: %+v", g)
	}
	if *g.TriggerRC != 1 || time.Duration(*g.Offset) != 1004079*time.Microsecond {
		t.Errorf("rc %d offset %s", *g.TriggerRC, *g.Offset)
	}
	// The estimate (T0 + 1.004 s = 3.092751) is before the removal line.
	if time.Duration(*g.Cut) != 3092751*time.Microsecond || g.Order != "T0 < cut < removal seen < T1" {
		t.Errorf("cut %s order %q", *g.Cut, g.Order)
	}
	// A late estimate is clamped to the guest's own removal line.
	g = ReadGuestTimes(j.Snapshot(), RemovalSurprise, host.Add(1010*time.Millisecond))
	if time.Duration(*g.Cut) != 3092830*time.Microsecond {
		t.Errorf("unclamped cut %s", *g.Cut)
	}
	if g := ReadGuestTimes(j.Snapshot(), RemovalGraceful, host); g.Removal != nil {
		t.Errorf("a surprise line proved a graceful removal: %+v", g)
	}
	if g := ReadGuestTimes(entries("[ 1.000000] no marker"), RemovalSurprise, host); g.T0 != nil || g.Cut != nil {
		t.Errorf("times without a T0: %+v", g)
	}
}

func TestMarkerPID(t *testing.T) {
	for line, want := range map[string]int{
		"[    2.088751] YANK-T0 trigger=unbind pid=68": 68,
		"YANK-T0 trigger=sync pid=":                    0, // used to panic
		"YANK-T0 trigger=sync pid= ":                   0,
		"YANK-T0 trigger=sync pid=x":                   0,
		"YANK-T0 trigger=sync":                         0,
	} {
		pid, ok := MarkerPID(line)
		if pid != want || ok != (want > 0) {
			t.Errorf("%q: got %d %v, want %d", line, pid, ok, want)
		}
	}
}

func TestWilson(t *testing.T) {
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{
		// Reference values from the closed form (e.g. statsmodels'
		// proportion_confint(method="wilson")).
		{0, 10, 0, 0.2775},
		{10, 10, 0.7225, 1},
		{5, 10, 0.2366, 0.7634},
		{1, 3, 0.0615, 0.7923},
		{0, 0, 0, 1},
	} {
		lo, hi := Wilson(tc.k, tc.n)
		if math.Abs(lo-tc.lo) > 1e-4 || math.Abs(hi-tc.hi) > 1e-4 {
			t.Errorf("Wilson(%d,%d) = %.4f-%.4f, want %.4f-%.4f", tc.k, tc.n, lo, hi, tc.lo, tc.hi)
		}
	}
	r := RateOf([]Outcome{Hang, Hang, Pass, Missed, InfraError, Crash})
	if r.Hangs != 2 || r.Tested != 4 || r.Missed != 1 || r.Infra != 1 || r.Crash != 1 {
		t.Fatalf("rate %+v", r)
	}
	if s := r.String(); !strings.Contains(s, "2/4 hung (50 %") || !strings.Contains(s, "1 missed") {
		t.Errorf("rate text %q", s)
	}
	if s := RateOf([]Outcome{Missed, Missed}).String(); s != "nothing tested, 2 missed" {
		t.Errorf("rate text %q", s)
	}
}

// TestJudgeWindowAnchored: an anchored cut is judged, not trusted. The
// breakpoint's stop stands in for the look at the trigger's stack only
// when the anchor is one of the window's functions (or the window names
// none); T0, T1 and the last look's I/O and device are judged as for a
// timed cut.
func TestJudgeWindowAnchored(t *testing.T) {
	unbind := Window{Trigger: WindowRunning, TriggerIn: []string{"del_gendisk"}, IO: WindowOutstanding}
	freeze := Window{Trigger: WindowRunning, TriggerIn: []string{"blk_mq_freeze_queue_wait"}}
	syncIO := Window{Trigger: WindowRunning, IO: WindowOutstanding, Device: WindowBound}
	// The sampler's last look was before the trigger reached the anchor:
	// it saw the shell, not del_gendisk; a timed judge would say missed.
	before := []Sample{sample(ms(1240), "none", "-", 40000, "0/0", "bound")}
	at := func(sym string, delay time.Duration, f func(*CutAt)) CutAt {
		c := CutAt{T0: ms(1250), Cut: ms(1262), Latest: ms(1265), Anchor: &AnchorFact{Symbol: sym, Hit: ms(1261), Delay: delay}}
		if f != nil {
			f(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name    string
		w       Window
		samples []Sample
		at      CutAt
		hit     bool
		reason  string // substring
	}{
		{"at the window's function, cut during the stop", unbind, before, at("del_gendisk", 0, nil), true, "a vCPU hit del_gendisk 11ms after T0, cut while the guest stood there"},
		{"the same look judged as a timed cut", unbind, before, CutAt{T0: ms(1250), Cut: ms(1262), Latest: ms(1265)}, false, "the trigger had not started"},
		{"an anchor that is not the window's function: the stack decides", unbind, before, at("blk_execute_rq", 0, nil), false, "the trigger had not started"},
		{"hit long before T0", unbind, before, at("del_gendisk", 0, func(c *CutAt) { c.Anchor.Hit = ms(1100) }), false, "before the trigger's T0: not the trigger's hit"},
		{"returned before the guest saw the removal", unbind, before, at("del_gendisk", 0, func(c *CutAt) { c.T1 = ms(1264) }), false, "not proven running at the cut"},
		{"no I/O outstanding at the last look", unbind, []Sample{sample(ms(1240), "none", "-", 0, "0/0", "bound")}, at("del_gendisk", 0, nil), false, "no I/O was outstanding"},
		{"last look too old for the I/O", unbind, []Sample{sample(ms(900), "none", "-", 40000, "0/0", "bound")}, at("del_gendisk", 0, nil), false, "the I/O and device at the cut are unknown"},
		{"a delay needs a look after the cut", freeze, []Sample{sample(ms(1240), "none", "-", 0, "-", "bound")}, at("blk_mq_freeze_queue_wait", 5*time.Millisecond, nil), false, "no later look read its stack"},
		{"a delay, still inside after the cut", freeze, []Sample{sample(ms(1240), "none", "-", 0, "-", "bound"), sample(ms(1300), "running", "blk_mq_freeze_queue_wait", 0, "1/0", "bound")},
			at("blk_mq_freeze_queue_wait", 5*time.Millisecond, nil), true, "still under blk_mq_freeze_queue_wait 38ms after the cut"},
		{"a window naming no function: T0 and T1 around the hit", syncIO, before, at("ksys_sync", 0, func(c *CutAt) { c.T1 = ms(2000) }), true, "a vCPU hit ksys_sync"},
		{"a window naming no function, the device unbound", syncIO, []Sample{sample(ms(1240), "none", "-", 40000, "0/0", "unbound")}, at("ksys_sync", 0, nil), false, "not bound to its driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := JudgeWindow(tc.w, tc.samples, tc.at)
			if e.Hit != tc.hit || !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("hit=%v reason=%q, want hit=%v reason containing %q", e.Hit, e.Reason, tc.hit, tc.reason)
			}
		})
	}
}

// The removal path lines of both kernels yank builds (real console
// lines: 6.1's and 6.12's pciehp word the button press differently).
func TestRemovalPathLines(t *testing.T) {
	for _, tc := range []struct {
		r    Removal
		line string
		want bool
	}{
		{RemovalGraceful, "pcieport 0000:00:02.0: pciehp: Slot(1): Powering off due to button press", true},      // 6.1
		{RemovalGraceful, "pcieport 0000:00:02.0: pciehp: Slot(1): Button press: will power off in 5 sec", true}, // 6.12
		{RemovalGraceful, "pcieport 0000:00:02.0: pciehp: Slot(1): Button press: will power on in 5 sec", false}, // not a removal
		{RemovalSurprise, "pcieport 0000:00:02.0: pciehp: Slot(1): Card not present", true},
		{RemovalSurprise, "pcieport 0000:00:02.0: pciehp: Slot(1): Link Down", true},
		{RemovalSurprise, "pcieport 0000:00:02.0: pciehp: Slot(1): Powering off due to button press", false},
	} {
		if got := removalPathPattern(tc.r).MatchString(tc.line); got != tc.want {
			t.Errorf("%s %q: %v, want %v", tc.r, tc.line, got, tc.want)
		}
	}
}
