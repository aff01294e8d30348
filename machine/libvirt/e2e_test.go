package libvirt_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/qmp"
)

// These tests run guests through a private libvirtd that each test starts
// itself (libvirttest), as root. They skip when not root.

// twoDiskGuest is the standard guest with a second disk on a second port,
// so one boot can show both removals.
func twoDiskGuest(t *testing.T, name string) machine.Spec {
	spec := machinetest.DebianGuest(t, name)
	spec.RootPorts = append(spec.RootPorts, machine.RootPort{ID: "rp2"})
	spec.Disks = append(spec.Disks, machine.Disk{ID: "disk1", Port: "rp2"})
	return spec
}

func TestLibvirtGuestRemovals(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	ctx := machinetest.Context(t, 4*time.Minute)
	b, err := libvirt.Parse(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	m := machinetest.StartT(t, twoDiskGuest(t, "lv-removals"), machinetest.WithBackend(b), machinetest.WithContext(ctx))

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
	agentWaitsOutAPause(t, ctx, d, m)

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
	// event subscription; graceful removal of the second disk.
	path, err := m.QMP.FindPCI(ctx, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	if res := machinetest.SurpriseRemove(t, ctx, m, "disk0"); res.PortID != "ua-rp1" || res.Device != path.Device.Address() {
		t.Fatalf("removed the wrong thing: %+v", res)
	}
	machinetest.GracefulRemove(t, ctx, m, "disk1")

	// Close destroys the domain: nothing left on the daemon.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !m.Exited() {
		t.Fatal("machine not exited after Close")
	}
	waitNoQEMU(t, d)
}

// agentWaitsOutAPause pauses the domain through libvirt, whose agent
// passthrough then refuses commands ("domain is not running"), as it
// does while an anchored cut holds the guest at a breakpoint: a command
// sent then must wait for the resume and succeed, as on the agent's
// socket, not fail as if the guest were gone.
func agentWaitsOutAPause(t *testing.T, ctx context.Context, d *libvirttest.Daemon, m *machine.Machine) {
	t.Helper()
	u, err := url.Parse(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	l, err := golibvirt.ConnectToURI(u)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Disconnect()
	doms, _, err := l.ConnectListAllDomains(1, golibvirt.ConnectListDomainsActive)
	if err != nil || len(doms) != 1 {
		t.Fatalf("the test's domain: %v, %v", doms, err)
	}
	if err := l.DomainSuspend(doms[0]); err != nil {
		t.Fatal(err)
	}
	const pause = 300 * time.Millisecond
	type resume struct {
		at  time.Time // just before the resume call
		err error
	}
	resumed := make(chan resume, 1)
	go func() {
		time.Sleep(pause)
		at := time.Now()
		resumed <- resume{at, l.DomainResume(doms[0])}
	}()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = m.Agent.Ping(pctx)
	answered := time.Now()
	r := <-resumed
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err != nil {
		t.Fatalf("agent ping while the domain is paused for %v: %v", pause, err)
	}
	if answered.Before(r.at) {
		t.Fatalf("agent ping answered %v before the resume: the domain was not paused", r.at.Sub(answered))
	}
	t.Logf("agent ping sent to a paused domain answered %v after the resume", answered.Sub(r.at))
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

const uriEnv = "YANK_LIBVIRT_TEST_URI"

func TestMain(m *testing.M) {
	if machinetest.IsChild() {
		b, err := libvirt.Parse(os.Getenv(uriEnv))
		if err != nil {
			os.Exit(1)
		}
		os.Exit(machinetest.RunChild(machine.Options{Backend: b}))
	}
	os.Exit(m.Run())
}

// TestLibvirtNothingLeaksWhenYankDies kills a yank process with a guest on
// libvirt: libvirtd destroys the transient domain (autodestroy on the
// closed connection) and the local runtime dir goes too.
func TestLibvirtNothingLeaksWhenYankDies(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	machinetest.LeakTest(t, []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}, []string{uriEnv + "=" + d.UnixURI()},
		func(int) bool { return d.QEMUCount() > 0 })
}
