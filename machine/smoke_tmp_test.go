package machine_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
)

func TestSmokeTmp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img, err := images.Build(ctx, images.Options{ModulesDir: "/lib/modules/6.1.0-56-amd64", Modules: []string{"virtio_pci", "virtio_blk", "virtio_console"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := machine.Spec{Name: "smoke", Kernel: "/boot/vmlinuz-6.1.0-56-amd64", Initrd: img.Path, Accel: machine.Accel(os.Getenv("ACCEL")),
		RootPorts: []machine.RootPort{{ID: "rp1"}}, Disks: []machine.Disk{{ID: "disk0", Port: "rp1", QueueSize: 4, NumQueues: 1, Throttle: machine.Throttle{BpsWrite: 2 << 20}}}}
	t0 := time.Now()
	m, err := machine.Boot(ctx, spec, machine.Options{ConsoleEcho: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Logf("ready after %s accel %s", time.Since(t0), m.Accel)
	st, err := m.Agent.RunShell(ctx, "ls /sys/bus/pci/devices; cat /proc/partitions")
	t.Logf("%+v %s %v", st, st.Stdout, err)
	var res any
	if os.Getenv("KIND") == "graceful" {
		res, err = qmp.Graceful(ctx, m.QMP, "disk0")
	} else {
		res, err = qmp.Surprise(ctx, m.QMP, "disk0")
	}
	t.Logf("%+v %v", res, err)
	time.Sleep(8 * time.Second)
	st, err = m.Agent.RunShell(ctx, "ls /sys/bus/pci/devices; cat /proc/partitions; dmesg | tail -20")
	t.Logf("%s %v", st.Stdout, err)
}
