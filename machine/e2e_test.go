package machine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
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
	ctx := testCtx(t, 3*time.Minute)
	m := boot(t, ctx, debianGuest(t, "boot"))

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

// devicePresent asks the guest whether a PCI function is in sysfs.
func devicePresent(t *testing.T, ctx context.Context, m *machine.Machine, bdf string) bool {
	t.Helper()
	res, err := m.Agent.RunShell(ctx, "test -e /sys/bus/pci/devices/"+bdf)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	return res.ExitCode == 0
}

// waitGone polls the guest until bdf leaves /sys/bus/pci/devices.
func waitGone(t *testing.T, ctx context.Context, m *machine.Machine, bdf string) {
	t.Helper()
	for devicePresent(t, ctx, m, bdf) {
		select {
		case <-ctx.Done():
			t.Fatalf("guest still lists %s", bdf)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

const diskBDF = "0000:01:00.0" // disk0 on rp1, the first root port

func TestGracefulRemoval(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	m := boot(t, ctx, debianGuest(t, "graceful"))
	if !devicePresent(t, ctx, m, diskBDF) {
		t.Fatalf("disk %s missing before removal", diskBDF)
	}
	mark := m.Console.Mark()
	res, err := qmp.Graceful(ctx, m.QMP, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Console.Wait(ctx, mark, "Attention button pressed"); err != nil {
		t.Fatalf("no attention-button path in the guest log: %v", err)
	}
	waitGone(t, ctx, m, diskBDF)
	t.Logf("device_del to DEVICE_DELETED: %s", res.Deleted.Sub(res.Requested))
}

func TestSurpriseRemoval(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	m := boot(t, ctx, debianGuest(t, "surprise"))
	mark := m.Console.Mark()
	res, err := qmp.Surprise(ctx, m.QMP, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Deleted.Sub(res.Cut); d > time.Second {
		t.Fatalf("DEVICE_DELETED came %s after the cut, want within 1s", d)
	}
	if res.PortID != "rp1" || res.Device.String() != "01:00.0" {
		t.Fatalf("removed the wrong thing: %+v", res)
	}
	if _, err := m.Console.Wait(ctx, mark, "Card not present"); err != nil {
		t.Fatalf("guest did not see a surprise removal: %v", err)
	}
	waitGone(t, ctx, m, diskBDF)
	if text := m.Console.Text(mark); strings.Contains(text, "Attention button") || strings.Contains(text, "Already disabled") {
		t.Fatalf("guest took the wrong path:\n%s", text)
	}
	if st, err := m.QMP.QueryStatus(ctx); err != nil || !st.Running {
		t.Fatalf("guest not resumed after the cut: %+v %v", st, err)
	}
	if err := m.Agent.Ping(ctx); err != nil {
		t.Fatalf("agent silent after surprise removal: %v", err)
	}
	t.Logf("cut to DEVICE_DELETED %s, vCPUs paused %s", res.Deleted.Sub(res.Cut), res.Resumed.Sub(res.Stopped))
}

func TestSurpriseRemovalErrors(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	m := boot(t, ctx, debianGuest(t, "surprise-errors"))
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
	ctx := testCtx(t, 2*time.Minute)
	spec := debianGuest(t, "dies")
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
	ctx := testCtx(t, time.Minute)
	spec := debianGuest(t, "bad")
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

// --- leak tests: a test process killed mid-run leaves nothing behind ---

const helperEnv = "YANK_MACHINE_TEST_HELPER"

// runHelper is the body of the child process: boot, report, then hang
// until killed.
func runHelper() int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	spec := debianGuest(fatalTB{}, "leak")
	m, err := machine.Boot(ctx, spec, machine.Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	pid, _ := os.ReadFile(m.Paths.PIDFile)
	fmt.Printf("BOOTED %s %s\n", strings.TrimSpace(string(pid)), m.Paths.Dir)
	<-ctx.Done()
	return 2
}

func TestNothingLeaksWhenTestProcessIsKilled(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			runRoot := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", "YANK_RUNTIME_DIR="+runRoot)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			fields := strings.Fields(line)
			if err != nil || len(fields) != 3 || fields[0] != "BOOTED" {
				t.Fatalf("helper did not boot: %q %v", line, err)
			}
			qemuPID, _ := strconv.Atoi(fields[1])
			dir := fields[2]
			if !alive(qemuPID) {
				t.Fatalf("QEMU pid %d not running before the kill", qemuPID)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for alive(qemuPID) || exists(dir) {
				if time.Now().After(deadline) {
					t.Fatalf("after %v: QEMU %d alive=%v, runtime dir %s exists=%v", sig, qemuPID, alive(qemuPID), dir, exists(dir))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if left, _ := os.ReadDir(runRoot); len(left) != 0 {
				t.Fatalf("runtime root not empty: %v", left)
			}
		})
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// A zombie still answers kill(0); only a running qemu counts.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat))
	return len(f) > 2 && f[2] != "Z" && strings.Contains(string(stat), "qemu")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, os.ErrNotExist)
}

// fatalTB lets the helper process reuse debianGuest outside a test.
type fatalTB struct{ testing.TB }

func (fatalTB) Helper() {}
func (fatalTB) Fatalf(format string, args ...any) {
	fmt.Printf("ERROR "+format+"\n", args...)
	os.Exit(1)
}

// yank's own kernels (built from linux-source-6.1, or taken from the
// cache) boot to agent-ready with everything built in: no modules.
func TestOwnKernelsBootToAgent(t *testing.T) {
	for _, variant := range []string{"stock", "rfc-v3", "rfc-v3-virtio"} {
		t.Run(variant, func(t *testing.T) {
			ctx := testCtx(t, 40*time.Minute)
			k, err := kernels.Resolve(ctx, variant, testWriter{t})
			if err != nil {
				t.Fatal(err)
			}
			img, err := images.ForKernel(ctx, k.ModulesDir)
			if err != nil {
				t.Fatal(err)
			}
			m := boot(t, ctx, machine.HotplugGuest("own-"+variant, k.BzImage, img.Path))
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
