package libvirt_test

import (
	"slices"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/qmp"
)

// TestLibvirtDiskKinds boots yank's stock kernel on libvirt with an nvme
// disk on rp1 and a virtio-scsi disk on rp2 (their devices as JSON in
// <qemu:commandline>, on libvirt's aliases of the ports), finds each
// one's block device under its PCI function, and cuts both out through
// libvirt's monitor passthrough.
func TestLibvirtDiskKinds(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	b, err := libvirt.Parse(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	spec := machinetest.OwnGuest(t, "stock", "lv-kinds")
	spec.Disks[0].Kind = machine.DiskNVMe
	spec.RootPorts = append(spec.RootPorts, machine.RootPort{ID: "rp2"})
	spec.Disks = append(spec.Disks, machine.Disk{ID: "disk1", Port: "rp2", Kind: machine.DiskVirtioSCSI, QueueSize: 4, NumQueues: 1})
	ctx := machinetest.Context(t, 4*time.Minute)
	m := machinetest.StartT(t, spec, machinetest.WithBackend(b), machinetest.WithContext(ctx))
	t.Logf("boot to agent-ready %s", time.Since(m.Started).Round(time.Millisecond))

	for _, c := range []struct{ id, port, block string }{{"disk0", "ua-rp1", "nvme0n1"}, {"disk1", "ua-rp2", "sda"}} {
		path, err := m.QMP.FindPCI(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		bdf := "0000:" + path.Device.Address().String()
		if got := machinetest.BlockDevices(t, ctx, m, bdf); !slices.Equal(got, []string{c.block}) {
			t.Fatalf("%s: block devices under %s: %q, want [%s]", c.id, bdf, got, c.block)
		}
		res, err := qmp.Surprise(ctx, m.QMP, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if res.PortID != c.port || res.Device != path.Device.Address() {
			t.Fatalf("%s: removed the wrong thing: %+v", c.id, res)
		}
		machinetest.WaitGone(t, ctx, m, bdf)
		for len(machinetest.BlockDevices(t, ctx, m, bdf)) > 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %s still in the guest after the cut", c.id, c.block)
			case <-time.After(200 * time.Millisecond):
			}
		}
		t.Logf("%s (%s) cut out of %s, cut to DEVICE_DELETED %s", c.id, c.block, c.port, res.Deleted.Sub(res.Cut))
	}
}
