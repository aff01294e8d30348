// Package machinetest boots real guests for yank's end-to-end tests:
// StartT (a booted guest that is logged and closed with the test, as
// vmtest's qemu.StartT), the standard guest on Debian's kernel, the leak
// test every backend runs (a yank process killed with a guest up leaves
// nothing behind), and the faults that infra-error tests inject.
package machinetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
)

// DebianGuest returns the standard hotplug guest (machine.HotplugGuest) on
// Debian's packaged kernel (no kernel build needed), building its image
// once per process.
func DebianGuest(tb testing.TB, name string) machine.Spec {
	tb.Helper()
	kernel, initrd, err := debianFiles()
	if err != nil {
		tb.Fatalf("preparing the Debian guest (run `make deps`): %v", err)
	}
	return machine.HotplugGuest(name, kernel, initrd)
}

// debianFiles returns Debian's kernel and its yank image, made once.
func debianFiles() (kernel, initrd string, err error) {
	f, err := debianOnce()
	return f[0], f[1], err
}

var debianOnce = sync.OnceValues(func() ([2]string, error) {
	k, err := kernels.Debian()
	if err != nil {
		return [2]string{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		return [2]string{}, err
	}
	return [2]string{k.BzImage, img.Path}, nil
})

// OwnGuest returns the standard hotplug guest on yank's own kernel variant
// ("stock", "rfc-v3", ...), built or taken from the cache (a cold build
// takes minutes; a build another process runs is waited for), with its
// image. The kernel and image are resolved once per process and variant.
func OwnGuest(tb testing.TB, variant, name string) machine.Spec {
	tb.Helper()
	ownMu.Lock()
	f, ok := ownFiles[variant]
	if !ok {
		f.kernel, f.initrd, f.err = ownResolve(variant, tb)
		if ownFiles == nil {
			ownFiles = map[string]ownResult{}
		}
		ownFiles[variant] = f
	}
	ownMu.Unlock()
	if f.err != nil {
		tb.Fatalf("preparing yank's %s kernel: %v", variant, f.err)
	}
	return machine.HotplugGuest(name, f.kernel, f.initrd)
}

type ownResult struct {
	kernel, initrd string
	err            error
}

var (
	ownMu    sync.Mutex
	ownFiles map[string]ownResult
)

func ownResolve(variant string, tb testing.TB) (kernel, initrd string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	k, err := kernels.Resolve(ctx, variant, Writer{tb})
	if err != nil {
		return "", "", err
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		return "", "", err
	}
	return k.BzImage, img.Path, nil
}

// BlockDevices runs machine.BlockDeviceScript in the guest.
func BlockDevices(t testing.TB, ctx context.Context, m *machine.Machine, bdf string) []string {
	t.Helper()
	res, err := m.Agent.RunShell(ctx, machine.BlockDeviceScript(bdf))
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	if !res.Success() {
		t.Fatalf("listing block devices under %s: exit %d: %s%s", bdf, res.ExitCode, res.Stdout, res.Stderr)
	}
	return strings.Fields(string(res.Stdout))
}

// Option tunes StartT.
type Option func(*config)

type config struct {
	ctx     context.Context
	timeout time.Duration
	opts    machine.Options
}

// WithBackend boots on b instead of machine.Local.
func WithBackend(b machine.Backend) Option { return func(c *config) { c.opts.Backend = b } }

// WithContext bounds the boot by ctx instead of WithTimeout's.
func WithContext(ctx context.Context) Option { return func(c *config) { c.ctx = ctx } }

// WithTimeout bounds the boot (default 3 minutes).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithOptions sets the machine options (the backend option still applies,
// and LogDir defaults to a test temp dir).
func WithOptions(o machine.Options) Option {
	return func(c *config) {
		b := c.opts.Backend
		c.opts = o
		if o.Backend == nil {
			c.opts.Backend = b
		}
	}
}

// StartT boots spec (machine.Boot) on the local backend unless
// WithBackend says otherwise, and closes the machine when t ends. It logs
// the exact QEMU command line (or, on another backend, the head of its
// qemu.log, where libvirt's domain XML is), so a failure can be reproduced
// by hand; on a failed boot it logs the console tail too and fails t. With
// -v the console is echoed to the test log. It skips t under -short.
func StartT(t testing.TB, spec machine.Spec, opts ...Option) *machine.Machine {
	t.Helper()
	e2e.Require(t)
	c := config{timeout: 3 * time.Minute}
	for _, o := range opts {
		o(&c)
	}
	mo := c.opts
	if mo.LogDir == "" {
		mo.LogDir = t.TempDir()
	}
	if mo.ConsoleEcho == nil && testing.Verbose() {
		mo.ConsoleEcho = Writer{t}
	}
	ctx := c.ctx
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
	}
	backend := machine.Local.Name()
	if mo.Backend != nil {
		backend = mo.Backend.Name()
	}
	start := time.Now()
	m, err := machine.Boot(ctx, spec, mo)
	logCommand(t, backend, filepath.Join(mo.LogDir, "qemu.log"))
	if err != nil {
		t.Logf("console tail (%s):\n%s", filepath.Join(mo.LogDir, "console.log"), tailFile(filepath.Join(mo.LogDir, "console.log"), 40))
		t.Fatalf("booting %s on %s: %v", spec.Name, backend, err)
	}
	t.Logf("%s booted on %s in %s (%s)", spec.Name, backend, time.Since(start).Round(time.Millisecond), m.Accel)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing %s: %v", spec.Name, err)
		}
	})
	return m
}

// logCommand logs how QEMU was started: the first line of qemu.log (the
// local backend writes the shell-quoted command line there), or the head
// of the file for other backends.
func logCommand(t testing.TB, backend, qemuLog string) {
	t.Helper()
	b, err := os.ReadFile(qemuLog)
	if err != nil {
		t.Logf("no QEMU command line: %v", err)
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if _, cmd, ok := strings.Cut(first, " "); ok && backend == machine.Local.Name() {
		t.Logf("QEMU command line:\n%s", cmd)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("%s:\n%s", qemuLog, strings.Join(lines[:min(len(lines), 120)], "\n"))
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("  (%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "  | " + strings.Join(lines[max(0, len(lines)-n):], "\n  | ")
}

// Writer writes to a test's log, a line per Write.
type Writer struct{ TB testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.TB.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Context is a context that ends after d or with t.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// DevicePresent asks the guest whether a PCI function is in sysfs.
func DevicePresent(t testing.TB, ctx context.Context, m *machine.Machine, bdf string) bool {
	t.Helper()
	res, err := m.Agent.RunShell(ctx, "test -e /sys/bus/pci/devices/"+bdf)
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	return res.ExitCode == 0
}

// WaitGone polls the guest until bdf leaves /sys/bus/pci/devices.
func WaitGone(t testing.TB, ctx context.Context, m *machine.Machine, bdf string) {
	t.Helper()
	for DevicePresent(t, ctx, m, bdf) {
		select {
		case <-ctx.Done():
			t.Fatalf("guest still lists %s", bdf)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// --- faults, for the infra-error tests of both backends ---

// Kill is the guest dying under a trial: its QEMU killed (on libvirt, the
// domain destroyed).
func Kill(m *machine.Machine) { m.Kill() }

// FreezeAgent stops qemu-ga inside the guest (SIGSTOP): the agent's
// channel stays open but nothing answers.
func FreezeAgent(m *machine.Machine) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Agent.Exec(ctx, guestagent.Background("kill -STOP $(pidof qemu-ga)", "/dev/null"))
}

// SilenceConsole stops the guest kernel's console output (printk level 0).
func SilenceConsole(m *machine.Machine) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Agent.RunShell(ctx, "echo 0 > /proc/sys/kernel/printk")
}

// --- the leak test: a yank process killed with a guest up ---

const childEnv = "YANK_MACHINETEST_CHILD"

// IsChild reports whether this test binary runs as a LeakTest child; its
// TestMain then calls RunChild.
func IsChild() bool { return os.Getenv(childEnv) != "" }

// RunChild is a LeakTest child's body: it boots the Debian guest with opts,
// prints "BOOTED <runtime dir> <QEMU pid, 0 if not local>" and waits to
// be killed. It returns the process's exit code.
func RunChild(opts machine.Options) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kernel, initrd, err := debianFiles()
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	m, err := machine.Boot(ctx, machine.HotplugGuest("leak", kernel, initrd), opts)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	pid := 0
	if b, err := os.ReadFile(m.Paths.PIDFile); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	fmt.Printf("BOOTED %s %d\n", m.Paths.Dir, pid)
	<-ctx.Done()
	return 2
}

// LeakTest kills, for each of sigs, a child process (this test binary
// again, with env, in a private runtime root) that has booted a guest
// (RunChild), and checks that the guest stops and the runtime dir goes:
// running says whether the guest still runs (pid is its QEMU's, 0 when not
// local), before the kill and after it.
func LeakTest(t *testing.T, sigs []syscall.Signal, env []string, running func(pid int) bool) {
	e2e.Require(t)
	for _, sig := range sigs {
		t.Run(sig.String(), func(t *testing.T) {
			runRoot := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(append(os.Environ(), env...), childEnv+"=1", "YANK_RUNTIME_DIR="+runRoot)
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
				t.Fatalf("child did not boot: %q %v", line, err)
			}
			dir := fields[1]
			pid, _ := strconv.Atoi(fields[2])
			if !running(pid) {
				t.Fatalf("guest (QEMU pid %d) not running before the kill", pid)
			}
			cmd.Process.Signal(sig)
			cmd.Wait()
			deadline := time.Now().Add(15 * time.Second)
			for running(pid) || exists(dir) {
				if time.Now().After(deadline) {
					t.Fatalf("after %v: guest (QEMU pid %d) running=%v, runtime dir %s exists=%v", sig, pid, running(pid), dir, exists(dir))
				}
				time.Sleep(100 * time.Millisecond)
			}
			if left, _ := os.ReadDir(runRoot); len(left) != 0 {
				t.Fatalf("runtime root not empty: %v", left)
			}
		})
	}
}

// QEMUAlive reports whether pid is a running (not zombie) QEMU.
func QEMUAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
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

// MedianMS is the median of samples in milliseconds, for benchmarks'
// ReportMetric.
func MedianMS(samples []time.Duration) float64 {
	s := slices.Clone(samples)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}

// --- removals, checked from the guest's side ---

// removal runs remove on device id, then waits for want on the guest's
// console and for the device to leave sysfs. It returns the console mark
// from before the removal.
func removal(t testing.TB, ctx context.Context, m *machine.Machine, id, want string, remove func() error) int {
	t.Helper()
	path, err := m.QMP.FindPCI(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	bdf := "0000:" + path.Device.Address().String()
	if !DevicePresent(t, ctx, m, bdf) {
		t.Fatalf("%s (%s) missing in the guest before its removal", id, bdf)
	}
	mark := m.Console.Mark()
	if err := remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Console.Wait(ctx, mark, want); err != nil {
		t.Fatalf("removal of %s: no %q on the guest console: %v", id, want, err)
	}
	WaitGone(t, ctx, m, bdf)
	return mark
}

// SurpriseRemove cuts device id out (qmp.Surprise) and checks that the
// guest saw a surprise removal: DEVICE_DELETED within 1 s of the cut,
// pciehp's "Card not present" and not the attention-button path, the
// device gone from sysfs, the vCPUs running and the agent answering.
func SurpriseRemove(t testing.TB, ctx context.Context, m *machine.Machine, id string) qmp.SurpriseResult {
	t.Helper()
	var res qmp.SurpriseResult
	mark := removal(t, ctx, m, id, "Card not present", func() (err error) {
		res, err = qmp.Surprise(ctx, m.QMP, id)
		return err
	})
	if d := res.Deleted.Sub(res.Cut); d > time.Second {
		t.Fatalf("DEVICE_DELETED came %s after the cut, want within 1s", d)
	}
	if text := m.Console.Text(mark); strings.Contains(text, "Attention button") || strings.Contains(text, "Already disabled") {
		t.Fatalf("guest took the wrong path:\n%s", text)
	}
	if st, err := m.QMP.QueryStatus(ctx); err != nil || !st.Running {
		t.Fatalf("guest not resumed after the cut: %+v %v", st, err)
	}
	if err := m.Agent.Ping(ctx); err != nil {
		t.Fatalf("agent silent after surprise removal: %v", err)
	}
	t.Logf("surprise removal of %s: cut to DEVICE_DELETED %s, vCPUs paused %s", id, res.Deleted.Sub(res.Cut), res.Resumed.Sub(res.Stopped))
	return res
}

// GracefulRemove removes device id with device_del (qmp.Graceful) and
// checks that the guest took the attention-button path and let it go.
func GracefulRemove(t testing.TB, ctx context.Context, m *machine.Machine, id string) qmp.GracefulResult {
	t.Helper()
	var res qmp.GracefulResult
	removal(t, ctx, m, id, "Attention button pressed", func() (err error) {
		res, err = qmp.Graceful(ctx, m.QMP, id)
		return err
	})
	t.Logf("graceful removal of %s: device_del to DEVICE_DELETED %s", id, res.Deleted.Sub(res.Requested))
	return res
}
