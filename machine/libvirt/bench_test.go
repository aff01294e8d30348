package libvirt_test

import (
	"context"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/qmp"
)

// BenchmarkLibvirtBootAndSurprise boots the standard guest through a
// private libvirtd (unix socket) and cuts its disk: median boot to
// agent-ready (upload of the boot files excluded: done once, before the
// timer), Surprise call to the cut, and to DEVICE_DELETED as libvirt's
// event subscription delivers it.
func BenchmarkLibvirtBootAndSurprise(b *testing.B) {
	e2e.Require(b)
	d := libvirttest.Start(b)
	be, err := libvirt.Parse(d.UnixURI())
	if err != nil {
		b.Fatal(err)
	}
	spec := machinetest.DebianGuest(b, "bench-lv")
	boot := func() (*machine.Machine, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		m, err := machine.Boot(ctx, spec, machine.Options{Backend: be})
		if err != nil {
			b.Fatal(err)
		}
		return m, time.Since(start)
	}
	m, _ := boot() // uploads kernel and initramfs
	m.Close()
	b.ResetTimer()
	var boots, cuts, deleted []time.Duration
	for i := 0; i < b.N; i++ {
		m, took := boot()
		boots = append(boots, took)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		res, err := qmp.Surprise(ctx, m.QMP, "disk0")
		cancel()
		m.Close()
		if err != nil {
			b.Fatal(err)
		}
		cuts = append(cuts, res.Cut.Sub(start))
		deleted = append(deleted, res.Deleted.Sub(start))
	}
	b.ReportMetric(machinetest.MedianMS(boots), "ms-boot-to-ready-median")
	b.ReportMetric(machinetest.MedianMS(cuts), "ms-surprise-to-cut-median")
	b.ReportMetric(machinetest.MedianMS(deleted), "ms-surprise-to-deleted-median")
	b.ReportMetric(0, "ns/op")
}
