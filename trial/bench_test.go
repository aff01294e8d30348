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
