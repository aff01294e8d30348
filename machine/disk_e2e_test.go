package machine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/qmp"
)

// The block device each kind shows yank's kernel, and the guest's blk-mq
// queue for the standard guest's knobs (QueueSize 4, NumQueues 1):
// nr_tags of its one hardware queue. nvme's depth is the guest's
// nvme.io_queue_depth (machine ignores QueueSize for nvme), minus the
// slot an NVMe ring keeps empty: 5 gives the 4 tags the virtio kinds get.
var kindGuest = map[machine.DiskKind]struct {
	name   string
	append string
	tags   string
}{
	machine.DiskVirtioBlk:  {"vda", "", "4"},
	machine.DiskNVMe:       {"nvme0n1", "nvme.io_queue_depth=5", "4"},
	machine.DiskVirtioSCSI: {"sda", "", "4"},
}

// TestDiskKindsSurpriseRemoval boots yank's stock kernel with one disk of
// each kind on a root port, finds its block device under the disk's PCI
// function (machine.BlockDeviceScript), checks the queue knobs reached the
// guest, cuts the slot (qmp.PrepareSurprise, Fire) and checks the block
// device and the function are gone.
func TestDiskKindsSurpriseRemoval(t *testing.T) {
	e2e.Require(t)
	for _, kind := range machine.DiskKinds() {
		t.Run(string(kind), func(t *testing.T) {
			want := kindGuest[kind]
			spec := machinetest.OwnGuest(t, "stock", "kind-"+string(kind))
			spec.Disks[0].Kind = kind
			spec.Append = want.append
			spec.CPUs = 2 // as trials boot it: NumQueues 1 is then one queue of two
			ctx := machinetest.Context(t, 3*time.Minute)
			m := machinetest.StartT(t, spec, machinetest.WithContext(ctx))
			t.Logf("%s: boot to agent-ready %s", kind, time.Since(m.Started).Round(time.Millisecond))

			path, err := m.QMP.FindPCI(ctx, "disk0")
			if err != nil {
				t.Fatal(err)
			}
			bdf := "0000:" + path.Device.Address().String()
			if bdf != diskBDF {
				t.Errorf("disk0 at %s, want %s (the first root port's slot)", bdf, diskBDF)
			}
			disks := machinetest.BlockDevices(t, ctx, m, bdf)
			if len(disks) != 1 || disks[0] != want.name {
				t.Fatalf("block devices under %s: %q, want [%s]", bdf, disks, want.name)
			}
			dev := disks[0]
			q := guestShell(t, ctx, m, "dd if=/dev/"+dev+" of=/dev/null bs=4096 count=4 2>/dev/null && echo read-ok; "+
				"cat /sys/block/"+dev+"/mq/0/nr_tags; ls /sys/block/"+dev+"/mq | wc -l")
			if got := strings.Fields(q); len(got) != 3 || got[0] != "read-ok" || got[1] != want.tags || got[2] != "1" {
				t.Errorf("%s: read, nr_tags, hardware queues: %q, want read-ok %s 1", dev, got, want.tags)
			}
			if kind == machine.DiskVirtioSCSI {
				if d := strings.TrimSpace(guestShell(t, ctx, m, "cat /sys/block/sda/device/queue_depth")); d != "4" {
					t.Errorf("sda queue_depth %s, want 4 (cmd_per_lun)", d)
				}
			}

			cut, err := qmp.PrepareSurprise(ctx, m.QMP, "disk0")
			if err != nil {
				t.Fatal(err)
			}
			mark := m.Console.Mark()
			res, err := cut.Fire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.PortID != "rp1" || res.Device != path.Device.Address() {
				t.Fatalf("removed the wrong thing: %+v", res)
			}
			if _, err := m.Console.Wait(ctx, mark, "Card not present"); err != nil {
				t.Fatalf("no surprise removal on the console: %v", err)
			}
			machinetest.WaitGone(t, ctx, m, bdf)
			for {
				left := guestShell(t, ctx, m, machine.BlockDeviceScript(bdf)+"; if test -e /sys/block/"+dev+"; then echo "+dev+"-still-in-sys-block; fi")
				if strings.TrimSpace(left) == "" {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("after the cut the guest still has %q", left)
				case <-time.After(200 * time.Millisecond):
				}
			}
			if st, err := m.QMP.QueryStatus(ctx); err != nil || !st.Running {
				t.Fatalf("guest not running after the cut: %+v %v", st, err)
			}
			t.Logf("%s: %s gone; cut to DEVICE_DELETED %s, vCPUs paused %s", kind, dev, res.Deleted.Sub(res.Cut), res.Resumed.Sub(res.Stopped))
		})
	}
}

// guestShell runs script through the agent and returns its stdout,
// failing t unless it exits 0.
func guestShell(t *testing.T, ctx context.Context, m *machine.Machine, script string) string {
	t.Helper()
	res, err := m.Agent.RunShell(ctx, script)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	if !res.Success() {
		t.Fatalf("guest: %s: exit %d: %s%s", script, res.ExitCode, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}
