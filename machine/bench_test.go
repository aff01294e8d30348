package machine_test

import (
	"context"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/qmp"
)

// BenchmarkBootToAgentReady boots the standard guest on Debian's kernel
// (make bench runs it 5 times) and reports the median time from QEMU's
// start to the agent answering.
func BenchmarkBootToAgentReady(b *testing.B) {
	e2e.Require(b)
	spec := machinetest.DebianGuest(b, "bench-boot")
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		start := time.Now()
		m, err := machine.Boot(ctx, spec, machine.Options{})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		m.Close()
		cancel()
	}
	b.ReportMetric(machinetest.MedianMS(samples), "ms-boot-to-ready-median")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSurpriseToDeleted reports the median time from the Surprise
// call to DEVICE_DELETED (boot time excluded).
func BenchmarkSurpriseToDeleted(b *testing.B) {
	e2e.Require(b)
	spec := machinetest.DebianGuest(b, "bench-surprise")
	var samples, cuts []time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		m, err := machine.Boot(ctx, spec, machine.Options{})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		start := time.Now()
		res, err := qmp.Surprise(ctx, m.QMP, "disk0")
		if err != nil {
			m.Close()
			cancel()
			b.Fatal(err)
		}
		samples = append(samples, res.Deleted.Sub(start))
		cuts = append(cuts, res.Cut.Sub(start))
		m.Close()
		cancel()
	}
	b.ReportMetric(machinetest.MedianMS(samples), "ms-surprise-to-deleted-median")
	b.ReportMetric(machinetest.MedianMS(cuts), "ms-surprise-to-cut-median")
	b.ReportMetric(0, "ns/op")
}
