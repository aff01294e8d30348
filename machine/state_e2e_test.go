package machine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/machinetest"
)

// TestSaveAndRestoreState saves a running Debian guest and restores it
// twice in fresh QEMU processes: each resumes with the guest's tmpfs,
// its background process and its disk as they were, and the agent
// answers. A damaged file fails the restore with QEMU's words and leaves
// no QEMU or runtime dir behind.
func TestSaveAndRestoreState(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 4*time.Minute)
	spec := machinetest.DebianGuest(t, "save")
	m := machinetest.StartT(t, spec, machinetest.WithContext(ctx))
	token := time.Now().Format(time.RFC3339Nano)
	if _, err := m.Agent.RunShell(ctx, "echo '"+token+"' > /run/token; sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /run/sleeper"); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	start := time.Now()
	if err := m.SaveState(ctx, state); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %d bytes in %s", st.Size(), time.Since(start).Round(time.Millisecond))
	m.Close()

	for i := range 2 {
		start := time.Now()
		r, err := machine.Restore(ctx, spec, machine.Options{LogDir: t.TempDir()}, state)
		if err != nil {
			t.Fatalf("restore %d: %v", i, err)
		}
		t.Logf("restore %d: agent answered after %s", i, time.Since(start).Round(time.Millisecond))
		res, err := r.Agent.RunShell(ctx, "cat /run/token; kill -0 $(cat /run/sleeper) && echo sleeper-alive; ls /sys/bus/pci/devices/"+diskBDF+"/ >/dev/null && echo disk-present")
		r.Close()
		if err != nil {
			t.Fatalf("restore %d: %v", i, err)
		}
		if got := string(res.Stdout); !strings.Contains(got, token) || !strings.Contains(got, "sleeper-alive") || !strings.Contains(got, "disk-present") {
			t.Fatalf("restore %d: the guest is not the one saved: %q", i, got)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad")
	b, _ := os.ReadFile(state)
	if err := os.WriteFile(bad, b[:len(b)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	before := runtimeDirs(t)
	r, err := machine.Restore(ctx, spec, machine.Options{LogDir: t.TempDir()}, bad)
	if err == nil {
		r.Close()
		t.Fatal("a truncated state file restored")
	}
	t.Logf("truncated state: %v", err)
	if !strings.Contains(err.Error(), "restoring guest state") || !strings.Contains(err.Error(), "load of migration failed") {
		t.Fatalf("error does not say the restore failed: %v", err)
	}
	if after := runtimeDirs(t); after > before {
		t.Fatalf("a failed restore left a runtime dir (%d before, %d after)", before, after)
	}
}

// TestSaveStateRefusedByNVMe: QEMU 7.2's nvme device cannot migrate.
// SaveState says so and the guest runs on.
func TestSaveStateRefusedByNVMe(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 3*time.Minute)
	spec := machinetest.DebianGuest(t, "save-nvme")
	spec.Disks[0].Kind = machine.DiskNVMe
	m := machinetest.StartT(t, spec, machinetest.WithContext(ctx))
	state := filepath.Join(t.TempDir(), "state")
	err := m.SaveState(ctx, state)
	if err == nil || !strings.Contains(err.Error(), "nvme") {
		t.Fatalf("SaveState on an nvme guest: %v, want QEMU's refusal naming nvme", err)
	}
	t.Logf("refused: %v", err)
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused save left %s: %v", state, err)
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := m.Agent.RunShell(actx, "true"); err != nil {
		t.Fatalf("guest does not run on after a refused save: %v", err)
	}
}

// runtimeDirs counts this test process's runtime dirs ("<pid>-<name>-*"):
// other packages' guests share the root while make test runs.
func runtimeDirs(t *testing.T) int {
	root, err := machine.RunRoot()
	if err != nil {
		t.Fatal(err)
	}
	own, err := filepath.Glob(filepath.Join(root, strconv.Itoa(os.Getpid())+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(own)
}
