package trial_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/trial"
)

// BenchmarkHangDetection runs unbind-race at +2 s on the stock kernel and
// reports the median time from the slot power cut to the HANG verdict
// (target: under 5 s under TCG).
func BenchmarkHangDetection(b *testing.B) {
	e2e.Require(b)
	kernel, initrd := guestForB(b, "stock")
	sc, err := scenario.Lookup("unbind-race")
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		v, err := trial.Run(ctx, trial.Trial{Scenario: sc, Params: scenario.Params{Offset: 2 * time.Second},
			KernelName: "stock", Kernel: kernel, Initrd: initrd})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if v.Outcome != scenario.Hang {
			b.Fatalf("unbind-race on stock: %s, want HANG:\n%s", v.Outcome, v)
		}
		lat = append(lat, time.Duration(v.DetectionLatency))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2])/float64(time.Millisecond), "ms-cut-to-verdict-median")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "ms-cut-to-verdict-max")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCutPause measures, side by side in one run, how long the
// guest stands still for the cut: an anchored cut (unbind-race at
// del_gendisk: the breakpoint's stop reaching yank, the prepared cut,
// the breakpoint lifted and the guest resumed) against a timed one
// (unbind-race at +0.1 s: QMP stop, the cut, cont). Each iteration runs
// one trial of each, alternating, so both see the same machine load.
// Target (issue 22): the anchored stop-to-resume median and p95 under
// 20 ms.
func BenchmarkCutPause(b *testing.B) {
	e2e.Require(b)
	kernel, initrd := guestForB(b, "stock")
	sc, err := scenario.Lookup("unbind-race")
	if err != nil {
		b.Fatal(err)
	}
	var anchored, stopToCut, timed []time.Duration
	for i := 0; i < b.N; i++ {
		for _, p := range []scenario.Params{{Anchor: "del_gendisk"}, {Offset: 100 * time.Millisecond}} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			v, err := trial.Run(ctx, trial.Trial{Scenario: sc, Params: p, KernelName: "stock", Kernel: kernel, Initrd: initrd})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			if v.Removal == nil || v.Removal.Kind != "surprise" {
				b.Fatalf("%+v: %s, no surprise cut: %s", p, v.Outcome, v.Reason)
			}
			if p.Anchor != "" {
				if v.Anchor == nil || v.Anchor.Resumed.IsZero() {
					b.Fatalf("anchored: %s, no anchor stop: %s", v.Outcome, v.Reason)
				}
				anchored = append(anchored, time.Duration(v.Anchor.Paused))
				stopToCut = append(stopToCut, v.Removal.Issued.Sub(v.Anchor.HitHost))
			} else {
				timed = append(timed, v.Removal.Resumed.Sub(v.Removal.Stopped))
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"anchored-stop-to-resume", anchored}, {"anchored-stop-to-cut", stopToCut}, {"timed-pause", timed}} {
		sort.Slice(m.d, func(i, j int) bool { return m.d[i] < m.d[j] })
		b.ReportMetric(ms(m.d[len(m.d)/2]), "ms-"+m.name+"-median")
		b.ReportMetric(ms(m.d[(len(m.d)*95+99)/100-1]), "ms-"+m.name+"-p95")
		b.Logf("bench: %s (ms, sorted): %v", m.name, m.d)
	}
	b.ReportMetric(0, "ns/op")
}
