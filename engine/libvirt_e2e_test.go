package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
	"github.com/yank-dev/yank/scenario"
)

// These tests start their own libvirtd (libvirttest, as root) and run a
// matrix over two connections to it: its unix socket and its loopback TCP
// listener, each host with capacity 1.

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func matrixTrials(t *testing.T, names []string, offsets []time.Duration) []engine.Trial {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	start := time.Now()
	g, err := engine.Prepare(ctx, kernels.Spec{Name: "stock", Variant: "stock"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stock kernel and image ready in %s", time.Since(start).Round(time.Millisecond))
	var trials []engine.Trial
	for i, n := range names {
		sc, err := scenario.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		// Repeat i+1 keeps the trials' evidence dirs apart.
		trials = append(trials, engine.Trial{Guest: g,
			Planned: scenario.Planned{Kernel: g.Name, Scenario: sc, Nominal: offsets[i], Offset: offsets[i], Repeat: i + 1}})
	}
	return trials
}

func TestLibvirtMatrixOverTwoConnections(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	unix, err := libvirt.Parse(d.UnixURI() + "#1")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := libvirt.Parse(d.TCPURI() + "#1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := machine.NewPool(machine.PoolMember{Backend: unix}, machine.PoolMember{Backend: tcp})
	if err != nil {
		t.Fatal(err)
	}
	// unbind-race, not surprise-io, is the HANG row: two guests share the
	// two cores here, and surprise-io's no-unbind race can be missed under
	// load (TestLibvirtScenariosMatchLocal runs surprise-io alone). The
	// idle controls are nvme's and virtio-scsi's: the other device kinds
	// on the libvirt backend, through the same engine.
	// The two window rows cut at their catalog anchors: two guests on two
	// cores starve the in-guest sampler, and a timed cut's window proof
	// then rests on a look that may be too old (MISSED); the breakpoint's
	// stop is a look of its own.
	trials := matrixTrials(t,
		[]string{"unbind-race", "graceful-io", "nvme-surprise-idle", "virtio-scsi-surprise-idle"},
		[]time.Duration{0, 0, 0, 0})
	for i := range trials[:2] {
		if trials[i].Anchor = trials[i].Planned.Scenario.CutAt; trials[i].Anchor == "" {
			t.Fatalf("%s names no anchor", trials[i].Planned.Scenario.Name)
		}
	}
	want := []scenario.Outcome{scenario.Hang, scenario.Pass, scenario.Pass, scenario.Pass}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	rows := runWindowMatrix(t, ctx, engine.Config{Pool: pool, Trials: trials, Dir: dir, Log: tlog{t}})
	t.Logf("matrix of %d trials over 2 connections took %s", len(rows), time.Since(start).Round(time.Second))
	var table bytes.Buffer
	engine.WriteTable(&table, rows)
	t.Logf("\n%s", table.String())
	hosts := map[string]int{}
	for i, r := range rows {
		hosts[r.Host]++
		if r.Verdict.Outcome != want[i] {
			t.Errorf("row %d (%s on %s): %s, want %s: %s", i, r.Verdict.Scenario, r.Host, r.Verdict.Outcome, want[i], r.Verdict.Reason)
		}
	}
	if hosts[unix.Name()] == 0 || hosts[tcp.Name()] == 0 {
		t.Errorf("trials not spread over both connections: %v", hosts)
	}
	var report struct{ Rows []map[string]any }
	b, err := os.ReadFile(filepath.Join(dir, "matrix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &report); err != nil || len(report.Rows) != len(trials) {
		t.Fatalf("matrix.json: %d rows, err %v", len(report.Rows), err)
	}
	if txt, err := os.ReadFile(filepath.Join(dir, "matrix.txt")); err != nil || !strings.Contains(string(txt), "host "+tcp.Name()) {
		t.Fatalf("matrix.txt lacks per-host totals: %v\n%s", err, txt)
	}
	if n := d.QEMUCount(); n != 0 {
		t.Errorf("%d QEMU processes left on the daemon", n)
	}
}

// TestLibvirtConnectionDropMidRun cuts one host's connection while a trial
// runs on it: that trial is INFRA-ERROR, libvirtd destroys its domain
// (autodestroy), the host is skipped afterwards and the rest of the matrix
// passes on the other host.
func TestLibvirtConnectionDropMidRun(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	proxy, err := libvirttest.NewProxy(d.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	unix, err := libvirt.Parse(d.UnixURI())
	if err != nil {
		t.Fatal(err)
	}
	flaky, err := libvirt.Parse("qemu+tcp://" + proxy.Addr() + "/system")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := machine.NewPool(machine.PoolMember{Backend: unix}, machine.PoolMember{Backend: flaky})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"surprise-idle", "surprise-idle", "surprise-idle", "surprise-idle"}
	trials := matrixTrials(t, names, make([]time.Duration, len(names)))
	var cutOnce sync.Once
	for i := range trials {
		trials[i].Hooks.AfterTrigger = func(m *machine.Machine) {
			if m.Backend.Name() == flaky.Name() {
				cutOnce.Do(func() {
					t.Logf("cutting the connection to %s", flaky.Name())
					proxy.Cut()
				})
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rows, err := engine.Run(ctx, engine.Config{Pool: pool, Trials: trials, Dir: t.TempDir(), Log: tlog{t}})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	engine.WriteTable(&table, rows)
	t.Logf("\n%s", table.String())
	infra, pass := 0, 0
	for _, r := range rows {
		switch {
		case r.Verdict.Outcome == scenario.InfraError && r.Host == flaky.Name():
			infra++
			t.Logf("dropped trial: %s", r.Verdict.Reason)
		case r.Verdict.Outcome == scenario.Pass && r.Host == unix.Name():
			pass++
		default:
			t.Errorf("unexpected row: %s on %s: %s", r.Verdict.Outcome, r.Host, r.Verdict.Reason)
		}
	}
	if infra != 1 || pass != len(rows)-1 {
		t.Fatalf("want 1 INFRA-ERROR on the cut host and %d PASS on the other, got %d and %d", len(rows)-1, infra, pass)
	}
	deadline := time.Now().Add(15 * time.Second)
	for d.QEMUCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d QEMU processes left on the daemon after the drop", d.QEMUCount())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLibvirtAnchoredCut runs unbind-race with its anchored cut on a
// libvirt domain: the domain's QEMU opens its gdbstub on the loopback
// (qemu:commandline), yank stops the guest at del_gendisk and cuts there.
// Deterministic: stopped in del_gendisk with writeback outstanding, the
// stock kernel hangs every time (0 MISSED in 30 anchored trials on local
// QEMU).
func TestLibvirtAnchoredCut(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	unix, err := libvirt.Parse(d.UnixURI() + "#1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := machine.NewPool(machine.PoolMember{Backend: unix})
	if err != nil {
		t.Fatal(err)
	}
	trials := matrixTrials(t, []string{"unbind-race"}, []time.Duration{0})
	trials[0].Anchor = "del_gendisk"
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rows := runWindowMatrix(t, ctx, engine.Config{Pool: pool, Trials: trials, Dir: dir, Log: tlog{t}})
	v := rows[0].Verdict
	if v.Outcome != scenario.Hang || v.Anchor == nil || v.Anchor.Hits != 1 || v.Window == nil || !v.Window.Hit {
		t.Fatalf("%s: %s (anchor %+v, window %+v), want a HANG cut at del_gendisk's first hit with the window hit", v.Scenario, v.Outcome, v.Anchor, v.Window)
	}
	t.Logf("anchor %s at %s: hit %s after T0, guest paused %s for the cut", v.Anchor.Symbol, v.Anchor.Address, time.Duration(v.Anchor.SinceT0), time.Duration(v.Anchor.Paused))
	if n := d.QEMUCount(); n != 0 {
		t.Errorf("%d QEMU processes left on the daemon", n)
	}
}

// runWindowMatrix runs cfg's matrix for a test that asserts its windows:
// again while a row lost its window proof to a stale sampler look
// (e2e.AgainOnStaleLook).
func runWindowMatrix(t *testing.T, ctx context.Context, cfg engine.Config) []engine.Row {
	t.Helper()
	return e2e.AgainOnStaleLook(t, func() []engine.Row {
		rows, err := engine.Run(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}, engine.Verdicts)
}
