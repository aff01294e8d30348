package machine_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirttest"
	"github.com/yank-dev/yank/qmp"
	"github.com/yank-dev/yank/scenario"
)

// These tests run guests through a private libvirtd that each test starts
// itself (libvirttest), as root. They skip when not root.

// twoDiskGuest is the standard guest with a second disk on a second port,
// so one boot can show both removals.
func twoDiskGuest(t *testing.T, name string) machine.Spec {
	spec := debianGuest(t, name)
	spec.RootPorts = append(spec.RootPorts, machine.RootPort{ID: "rp2"})
	spec.Disks = append(spec.Disks, machine.Disk{ID: "disk1", Port: "rp2"})
	return spec
}

func bootLibvirt(t *testing.T, ctx context.Context, b machine.Backend, spec machine.Spec) *machine.Machine {
	t.Helper()
	opts := machine.Options{Backend: b}
	if testing.Verbose() {
		opts.ConsoleEcho = testWriter{t}
	}
	start := time.Now()
	m, err := machine.Boot(ctx, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booted through %s in %s (%s)", b.Name(), time.Since(start).Round(time.Millisecond), m.Accel)
	t.Cleanup(func() { m.Close() })
	return m
}

func TestLibvirtGuestRemovals(t *testing.T) {
	d := libvirttest.Start(t)
	ctx := testCtx(t, 4*time.Minute)
	b, err := machine.ParseLibvirt(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	m := bootLibvirt(t, ctx, b, twoDiskGuest(t, "lv-removals"))

	// Agent through libvirt's agent passthrough.
	res, err := m.Agent.RunShell(ctx, "uname -r; echo to-stderr >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || !strings.Contains(string(res.Stderr), "to-stderr") || len(res.Stdout) == 0 {
		t.Fatalf("agent exec: %+v", res)
	}
	if _, err := m.Agent.ExecStatus(ctx, 999999); err == nil {
		t.Fatal("guest-exec-status of an unknown pid succeeded")
	}
	// QMP through the monitor passthrough.
	kvm, err := m.QMP.QueryKVM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kvm.Enabled != (m.Accel == machine.AccelKVM) {
		t.Fatalf("accel %s, QEMU says kvm=%v", m.Accel, kvm.Enabled)
	}
	if err := m.QMP.DeviceDel(ctx, "nosuchdevice"); !qmp.IsClass(err, "DeviceNotFound") {
		t.Fatalf("device_del of a missing device: got %v, want DeviceNotFound", err)
	}
	// Console through the libvirt console stream, from the first line.
	if lines := m.Console.Lines(0); len(lines) == 0 || !strings.Contains(m.Console.Text(0), "Linux version") {
		t.Fatalf("console lacks the kernel's first line; starts with %v", lines[:min(len(lines), 3)])
	}
	if _, err := m.Console.Wait(ctx, 0, "pciehp"); err != nil {
		t.Fatalf("console never mentions pciehp: %v", err)
	}

	// Surprise removal through libvirt, events through libvirt's QEMU
	// event subscription.
	path, err := m.QMP.FindPCI(ctx, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	bdf := "0000:" + path.Device.Address().String()
	if !devicePresent(t, ctx, m, bdf) {
		t.Fatalf("disk0 (%s) missing in the guest", bdf)
	}
	mark := m.Console.Mark()
	sres, err := qmp.Surprise(ctx, m.QMP, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	if d := sres.Deleted.Sub(sres.Cut); d > time.Second {
		t.Fatalf("DEVICE_DELETED %s after the cut", d)
	}
	if sres.PortID != "ua-rp1" || sres.Device != path.Device.Address() {
		t.Fatalf("removed the wrong thing: %+v", sres)
	}
	if _, err := m.Console.Wait(ctx, mark, "Card not present"); err != nil {
		t.Fatalf("guest did not see a surprise removal: %v", err)
	}
	waitGone(t, ctx, m, bdf)
	if text := m.Console.Text(mark); strings.Contains(text, "Attention button") || strings.Contains(text, "Already disabled") {
		t.Fatalf("guest took the wrong path:\n%s", text)
	}
	if st, err := m.QMP.QueryStatus(ctx); err != nil || !st.Running {
		t.Fatalf("guest not resumed: %+v %v", st, err)
	}
	t.Logf("surprise: cut to DEVICE_DELETED %s, vCPUs paused %s", sres.Deleted.Sub(sres.Cut), sres.Resumed.Sub(sres.Stopped))

	// Graceful removal of the second disk.
	mark = m.Console.Mark()
	gres, err := qmp.Graceful(ctx, m.QMP, "disk1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Console.Wait(ctx, mark, "Attention button pressed"); err != nil {
		t.Fatalf("no attention-button path: %v", err)
	}
	t.Logf("graceful: device_del to DEVICE_DELETED %s", gres.Deleted.Sub(gres.Requested))

	// Close destroys the domain: nothing left on the daemon.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !m.Exited() {
		t.Fatal("machine not exited after Close")
	}
	waitNoQEMU(t, d)
}

func waitNoQEMU(t *testing.T, d *libvirttest.Daemon) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for d.QEMUCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d QEMU processes still run on the daemon", d.QEMUCount())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stockGuest returns the stock kernel (cached build) and its image.
func stockGuest(t *testing.T) (kernel, initrd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	k, err := kernels.Resolve(ctx, "stock", nil)
	if err != nil {
		t.Fatalf("kernel stock: %v", err)
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	return k.BzImage, img.Path
}

// TestLibvirtScenariosMatchLocal runs surprise-io and graceful-io on the
// stock kernel through libvirt and locally: same verdicts.
func TestLibvirtScenariosMatchLocal(t *testing.T) {
	d := libvirttest.Start(t)
	kernel, initrd := stockGuest(t)
	b, err := machine.ParseLibvirt(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		offset time.Duration
		want   scenario.Outcome
		class  string
	}{
		{"surprise-io", 2 * time.Second, scenario.Hang, "pciehp-del_gendisk"},
		{"graceful-io", 2 * time.Second, scenario.Pass, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := scenario.Lookup(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]scenario.Verdict{}
			for _, be := range []machine.Backend{b, machine.Local} {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				v, err := scenario.Run(ctx, scenario.Trial{
					Scenario: sc, Params: scenario.Params{Offset: tc.offset}, KernelName: "stock",
					Kernel: kernel, Initrd: initrd, Artifacts: filepath.Join(t.TempDir(), "artifacts"),
					Progress: testLog{t}, Backend: be,
				})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %s", be.Name(), v.String())
				if v.Outcome != tc.want || v.Classification != tc.class {
					t.Errorf("%s: got %s/%s, want %s/%s", be.Name(), v.Outcome, v.Classification, tc.want, tc.class)
				}
				if achieved := time.Duration(v.AchievedOffset); achieved < tc.offset || achieved > tc.offset+500*time.Millisecond {
					t.Errorf("%s: achieved offset %s, requested %s", be.Name(), achieved, tc.offset)
				}
				for _, f := range []string{"verdict.json", "timeline.log", "console.log", "events.jsonl", "host.log", "qemu.log"} {
					if _, err := os.Stat(filepath.Join(v.Artifacts, f)); err != nil {
						t.Errorf("%s: evidence %s missing: %v", be.Name(), f, err)
					}
				}
				got[be.Name()] = v
			}
			waitNoQEMU(t, d)
		})
	}
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const libvirtHelperEnv = "YANK_LIBVIRT_TEST_HELPER_URI"

// TestLibvirtHelperProcess is the child of TestLibvirtNothingLeaksWhenYankDies:
// it boots a guest through libvirt, reports, and waits to be killed.
func TestLibvirtHelperProcess(t *testing.T) {
	uri := os.Getenv(libvirtHelperEnv)
	if uri == "" {
		t.Skip("helper process only")
	}
	b, err := machine.ParseLibvirt(uri)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := machine.Boot(ctx, debianGuest(fatalTB{}, "lv-leak"), machine.Options{Backend: b})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("BOOTED %s\n", m.Paths.Dir)
	<-ctx.Done()
	os.Exit(2)
}

// TestLibvirtNothingLeaksWhenYankDies kills a yank process with a guest on
// libvirt: libvirtd destroys the transient domain (autodestroy on the
// closed connection) and the local runtime dir goes too.
func TestLibvirtNothingLeaksWhenYankDies(t *testing.T) {
	d := libvirttest.Start(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			runRoot := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestLibvirtHelperProcess$")
			cmd.Env = append(os.Environ(), libvirtHelperEnv+"="+d.UnixURI(), "YANK_RUNTIME_DIR="+runRoot)
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
			if err != nil || len(fields) != 2 || fields[0] != "BOOTED" {
				t.Fatalf("helper did not boot: %q %v", line, err)
			}
			if n := d.QEMUCount(); n != 1 {
				t.Fatalf("%d QEMU processes on the daemon before the kill, want 1", n)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			deadline := time.Now().Add(15 * time.Second)
			for d.QEMUCount() > 0 || exists(fields[1]) {
				if time.Now().After(deadline) {
					t.Fatalf("after %v: %d QEMU on the daemon, runtime dir %s exists=%v", sig, d.QEMUCount(), fields[1], exists(fields[1]))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if left, _ := os.ReadDir(runRoot); len(left) != 0 {
				t.Fatalf("runtime root not empty: %v", left)
			}
		})
	}
}

// TestLibvirtInfraFailuresAreNeverPassOrHang: the scenario fault injections
// of scenario's e2e tests, on libvirt: the domain destroyed before or after
// the removal, the agent frozen after it.
func TestLibvirtInfraFailuresAreNeverPassOrHang(t *testing.T) {
	d := libvirttest.Start(t)
	kernel, initrd := stockGuest(t)
	b, err := machine.ParseLibvirt(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := scenario.Lookup("surprise-idle")
	for name, hooks := range map[string]scenario.Hooks{
		"domain destroyed before the removal": {AfterTrigger: func(m *machine.Machine) { m.Kill() }},
		"domain destroyed after the removal":  {AfterRemoval: func(m *machine.Machine) { m.Kill() }},
		"agent silent after the removal": {AfterRemoval: func(m *machine.Machine) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m.Agent.Exec(ctx, guestagent.Background("kill -STOP $(pidof qemu-ga)", "/dev/null"))
		}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			v, err := scenario.Run(ctx, scenario.Trial{Scenario: sc, KernelName: "stock", Kernel: kernel, Initrd: initrd,
				Artifacts: t.TempDir(), Hooks: hooks, Backend: b})
			if err != nil {
				t.Fatal(err)
			}
			if v.Outcome != scenario.InfraError {
				t.Fatalf("got %s (%s), want INFRA-ERROR", v.Outcome, v.Reason)
			}
			t.Logf("reason: %s", v.Reason)
		})
	}
	waitNoQEMU(t, d)
}
