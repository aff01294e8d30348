package machine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/qmp"
)

// These tests boot real guests under QEMU (TCG here) with Debian's kernel,
// Debian's qemu-ga and busybox in a yank image.

func TestReadyMarkerMatchesImage(t *testing.T) {
	if machine.ReadyMarker != images.ReadyMarker || machine.AgentPortName != images.AgentPortName {
		t.Fatal("machine and images disagree on the ready marker or agent port name")
	}
}

func TestBootRunsAgentCommands(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 3*time.Minute)
	m := machinetest.StartT(t, machinetest.DebianGuest(t, "boot"), machinetest.WithContext(ctx))

	st, err := os.Stat(m.Paths.Dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("runtime dir %s: mode %v, err %v; want 0700", m.Paths.Dir, st.Mode().Perm(), err)
	}
	res, err := m.Agent.RunShell(ctx, "uname -r; echo to-stderr >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimPrefix(filepath.Base(m.Spec.Kernel), "vmlinuz-")
	if got := strings.TrimSpace(string(res.Stdout)); got != release || res.ExitCode != 3 || !strings.Contains(string(res.Stderr), "to-stderr") {
		t.Fatalf("agent exec: stdout %q (want %q), exit %d (want 3), stderr %q", got, release, res.ExitCode, res.Stderr)
	}
	kvm, err := m.QMP.QueryKVM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kvm.Enabled != (m.Accel == machine.AccelKVM) {
		t.Fatalf("machine says accel %s, QEMU says kvm enabled=%v", m.Accel, kvm.Enabled)
	}
	if _, err := m.Console.Wait(ctx, 0, "pciehp"); err != nil {
		t.Fatalf("guest console never mentions pciehp, so native hotplug is not active: %v", err)
	}
}

const diskBDF = "0000:01:00.0" // disk0 on rp1, the first root port

func TestGracefulRemoval(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 3*time.Minute)
	m := machinetest.StartT(t, machinetest.DebianGuest(t, "graceful"), machinetest.WithContext(ctx))
	machinetest.GracefulRemove(t, ctx, m, "disk0")
}

func TestSurpriseRemoval(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 3*time.Minute)
	m := machinetest.StartT(t, machinetest.DebianGuest(t, "surprise"), machinetest.WithContext(ctx))
	if res := machinetest.SurpriseRemove(t, ctx, m, "disk0"); res.PortID != "rp1" || res.Device.String() != "01:00.0" {
		t.Fatalf("removed the wrong thing: %+v", res)
	}
}

func TestSurpriseRemovalErrors(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 3*time.Minute)
	m := machinetest.StartT(t, machinetest.DebianGuest(t, "surprise-errors"), machinetest.WithContext(ctx))
	if _, err := qmp.Surprise(ctx, m.QMP, "nosuchdisk"); err == nil || !strings.Contains(err.Error(), "nosuchdisk") {
		t.Fatalf("unknown device: got %v, want an error naming it", err)
	}
	// The agent's virtio-serial sits on the root bus: no slot to cut.
	if _, err := qmp.Surprise(ctx, m.QMP, "vser0"); err == nil || !strings.Contains(err.Error(), "root port") {
		t.Fatalf("root-bus device: got %v, want a root port error", err)
	}
	if st, err := m.QMP.QueryStatus(ctx); err != nil || !st.Running {
		t.Fatalf("guest left paused after failed removals: %+v %v", st, err)
	}
}

func TestQEMUDeathIsReported(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 2*time.Minute)
	spec := machinetest.DebianGuest(t, "dies")
	m, err := machine.Start(ctx, spec, machine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Kill()
	err = m.WaitReady(ctx)
	if err == nil || !strings.Contains(err.Error(), "died") {
		t.Fatalf("WaitReady after QEMU died: got %v, want an error saying QEMU died", err)
	}
}

func TestBadSpecsFailClearly(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, time.Minute)
	spec := machinetest.DebianGuest(t, "bad")
	for name, tc := range map[string]struct {
		mutate func(*machine.Spec)
		want   string
	}{
		"missing kernel":       {func(s *machine.Spec) { s.Kernel = "/nonexistent/bzImage" }, "/nonexistent/bzImage"},
		"disk on unknown port": {func(s *machine.Spec) { s.Disks[0].Port = "rp9" }, `"rp9"`},
		"bad queue size":       {func(s *machine.Spec) { s.Disks[0].QueueSize = 3 }, "power of two"},
		"not a kernel":         {func(s *machine.Spec) { s.Kernel = "/etc/hostname" }, "died"},
	} {
		t.Run(name, func(t *testing.T) {
			s := spec
			s.Disks = append([]machine.Disk(nil), spec.Disks...)
			tc.mutate(&s)
			m, err := machine.Boot(ctx, s, machine.Options{})
			if err == nil {
				m.Close()
				t.Fatal("bad spec booted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// A test process killed mid-run (SIGKILL, Ctrl-C, SIGTERM) leaves no
// QEMU and no runtime dir behind.
func TestNothingLeaksWhenTestProcessIsKilled(t *testing.T) {
	e2e.Require(t)
	machinetest.LeakTest(t, []syscall.Signal{syscall.SIGKILL, syscall.SIGINT, syscall.SIGTERM}, nil, machinetest.QEMUAlive)
}

// yank's own kernels (built from linux-source-6.1, or taken from the
// cache) boot to agent-ready with everything built in: no modules.
func TestOwnKernelsBootToAgent(t *testing.T) {
	e2e.Require(t)
	for _, variant := range []string{"stock", "rfc-v3", "rfc-v3-virtio"} {
		t.Run(variant, func(t *testing.T) {
			ctx := machinetest.Context(t, 40*time.Minute)
			k, err := kernels.Resolve(ctx, variant, machinetest.Writer{TB: t})
			if err != nil {
				t.Fatal(err)
			}
			img, err := images.ForKernel(ctx, k.ModulesDir)
			if err != nil {
				t.Fatal(err)
			}
			m := machinetest.StartT(t, machine.HotplugGuest("own-"+variant, k.BzImage, img.Path), machinetest.WithContext(ctx))
			res, err := m.Agent.RunShell(ctx, "uname -r; test -e /sys/bus/pci/devices/"+diskBDF+" && echo disk")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(res.Stdout)); len(got) != 2 || got[0] != k.Release || got[1] != "disk" {
				t.Fatalf("guest says %q, want release %s and the disk", res.Stdout, k.Release)
			}
			t.Logf("%s booted to agent-ready in %s", variant, time.Since(m.Started).Round(time.Millisecond))
		})
	}
}

// A guest that never gets ready by its deadline is reported with what it
// was doing: QEMU's state and each vCPU's instruction pointer, looked at
// twice. -S holds the vCPUs at the reset vector, so the report is the same
// on every run.
func TestBootDeadlineReportsTheStall(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, time.Minute)
	spec := machinetest.DebianGuest(t, "stall")
	spec.ExtraArgs = append(spec.ExtraArgs, "-S")
	m, err := machine.Start(ctx, spec, machine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err = m.WaitReady(wctx)
	if !errors.Is(err, machine.ErrNotReady) {
		t.Fatalf("a guest held by -S: %v, want ErrNotReady", err)
	}
	for _, want := range []string{"QEMU's status: prelaunch", "look 1: vCPU 0 at 0xfff0", "look 2: vCPU 0 at 0xfff0", "not halted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("boot deadline error lacks %q:\n%v", want, err)
		}
	}
}
