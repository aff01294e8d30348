package trial_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/trial"
)

// A real kernel crash right after the cut must be CRASH with the kernel's
// own BUG line, not PASS (surprise-idle passes without it) and not
// INFRA-ERROR. The crash is LKDTM's BUG() (CONFIG_LKDTM in yank's kernels),
// written to debugfs by a guest shell through the agent: the oops kills
// that shell, the guest runs on.
func TestCrashAfterRemoval(t *testing.T) {
	e2e.Require(t)
	kernel, initrd := guestFor(t, "stock")
	sc, err := scenario.Lookup("surprise-idle")
	if err != nil {
		t.Fatal(err)
	}
	const direct = "/sys/kernel/debug/provoke-crash/DIRECT"
	var hookErr error
	hooks := trial.Hooks{AfterRemoval: func(m *machine.Machine) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := m.Agent.RunShell(ctx, "[ -e "+direct+" ] || mount -t debugfs none /sys/kernel/debug; grep -qx BUG "+direct)
		if err == nil {
			err = res.Err("mounting debugfs")
		}
		mark := m.Console.Mark()
		if err == nil {
			// In the background: the writing shell never returns.
			_, err = m.Agent.Exec(ctx, guestagent.Background("echo BUG > "+direct, "/dev/null"))
		}
		if err == nil {
			// The crash must be in before the trial looks: a starved guest
			// could run the shell after surprise-idle's quiet probes made
			// it a PASS.
			_, err = m.Console.Wait(ctx, mark, "kernel BUG at")
		}
		hookErr = err
	}}
	dir := filepath.Join(t.TempDir(), "artifacts")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	v, err := trial.Run(ctx, trial.Trial{
		Scenario: sc, KernelName: "stock", Kernel: kernel, Initrd: initrd,
		Artifacts: dir, Progress: testLog{t}, Hooks: hooks,
	})
	if err != nil {
		t.Fatal(err)
	}
	if hookErr != nil {
		t.Fatalf("provoking the BUG: %v", hookErr)
	}
	t.Log(v.String())
	if v.Outcome != scenario.Crash {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		t.Fatalf("got %s (%s), want CRASH\nconsole.log:\n%s", v.Outcome, v.Reason, b)
	}
	if v.Crash == nil || !strings.HasPrefix(v.Crash.Line, "kernel BUG at drivers/misc/lkdtm/bugs.c:") || !strings.HasSuffix(v.Crash.Line, "!") {
		t.Fatalf("crash hit %+v, want the kernel BUG line of lkdtm_BUG", v.Crash)
	}
	if !strings.Contains(v.Reason, v.Crash.Line) {
		t.Errorf("reason %q does not quote the crash line", v.Reason)
	}
	if v.Timeline.Removal.IsZero() || v.Crash.Time.Before(v.Timeline.Removal) {
		t.Errorf("crash at %s, removal at %s: the BUG was provoked after the cut", v.Crash.Time, v.Timeline.Removal)
	}
	if len(v.Warnings) != 0 {
		t.Errorf("warnings %+v, want none", v.Warnings)
	}
	for _, f := range []string{"verdict.json", "console.log", "timeline.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("evidence %s missing: %v", f, err)
		}
	}
}
