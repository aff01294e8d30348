package scenario_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
)

// guestFor returns the kernel and a fitting image for a variant, building
// the kernel if the cache lacks it.
func guestFor(t *testing.T, variant string) (kernel, initrd string) {
	return guestForB(t, variant)
}

func guestForB(t testing.TB, variant string) (kernel, initrd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	k, err := kernels.Resolve(ctx, variant, testLog{t})
	if err != nil {
		t.Fatalf("kernel %s: %v", variant, err)
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	return k.BzImage, img.Path
}

type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func runTrial(t *testing.T, variant, name string, offset time.Duration) scenario.Verdict {
	t.Helper()
	kernel, initrd := guestFor(t, variant)
	sc, err := scenario.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "artifacts")
	if keep := os.Getenv("YANK_TEST_ARTIFACTS"); keep != "" {
		dir = filepath.Join(keep, variant, name, offset.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, err := scenario.Run(ctx, scenario.Trial{
		Scenario: sc, Params: scenario.Params{Offset: offset}, KernelName: variant,
		Kernel: kernel, Initrd: initrd, Artifacts: dir, Progress: testLog{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(v.String())
	if b, err := os.ReadFile(filepath.Join(dir, "stacks.txt")); err == nil {
		t.Logf("stacks.txt:\n%s", b)
	}
	return v
}

// expectation is what a scenario must yield on a kernel.
type expectation struct {
	name   string
	offset time.Duration
	want   scenario.Outcome
	class  string
}

// Known-bad kernels: without a consumer of the RFC, both the unbind race
// and the no-unbind surprise removal hang; the controls pass.
var knownBad = []expectation{
	{"unbind-race", 2 * time.Second, scenario.Hang, "unbind-del_gendisk"},
	{"surprise-io", 2 * time.Second, scenario.Hang, "pciehp-del_gendisk"},
	{"surprise-idle", 0, scenario.Pass, ""},
	{"graceful-io", 2 * time.Second, scenario.Pass, ""},
}

func TestScenariosOnKnownBadKernels(t *testing.T) {
	for _, variant := range []string{"stock", "rfc-v3"} {
		for _, tc := range knownBad {
			t.Run(variant+"/"+tc.name, func(t *testing.T) {
				v := runTrial(t, variant, tc.name, tc.offset)
				if v.Outcome != tc.want || v.Classification != tc.class {
					t.Fatalf("got %s/%s, want %s/%s:\n%s", v.Outcome, v.Classification, tc.want, tc.class, v)
				}
				checkVerdict(t, v, tc.offset)
			})
		}
	}
}

// The fixed kernel (rfc-v3 + the virtio consumer) must survive the race at
// every offset, on the same parameters that make the others hang.
func TestScenariosOnFixedKernel(t *testing.T) {
	var cases []expectation
	for _, off := range []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		cases = append(cases, expectation{"unbind-race", off, scenario.Pass, ""})
	}
	cases = append(cases,
		expectation{"surprise-io", 2 * time.Second, scenario.Pass, ""},
		expectation{"surprise-idle", 0, scenario.Pass, ""},
		expectation{"graceful-io", 2 * time.Second, scenario.Pass, ""})
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s@%s", tc.name, tc.offset), func(t *testing.T) {
			v := runTrial(t, "rfc-v3-virtio", tc.name, tc.offset)
			if v.Outcome != tc.want {
				t.Fatalf("got %s/%s, want %s:\n%s", v.Outcome, v.Classification, tc.want, v)
			}
			checkVerdict(t, v, tc.offset)
		})
	}
}

// checkVerdict asserts what every verdict must carry.
func checkVerdict(t *testing.T, v scenario.Verdict, offset time.Duration) {
	t.Helper()
	achieved := time.Duration(v.AchievedOffset)
	if achieved < offset || achieved > offset+500*time.Millisecond {
		t.Errorf("achieved offset %s too far from requested %s", achieved, offset)
	}
	for _, f := range []string{"verdict.json", "timeline.log", "console.log", "events.jsonl", "host.log"} {
		if _, err := os.Stat(filepath.Join(v.Artifacts, f)); err != nil {
			t.Errorf("evidence %s missing: %v", f, err)
		}
	}
	if v.Outcome == scenario.Hang {
		if v.StuckTask == nil || len(v.StuckTask.Stack) == 0 {
			t.Errorf("HANG without the stuck task's stack: %+v", v.StuckTask)
		}
		for _, f := range v.StuckTask.Stack {
			if strings.HasPrefix(f, "?") {
				t.Errorf("unreliable stack frame %q: the kernel needs ORC or frame pointers", f)
			}
		}
		if lat := time.Duration(v.DetectionLatency); lat > 30*time.Second {
			t.Errorf("detection took %s", lat)
		}
	}
}

func TestInfraFailuresAreNeverPassOrHang(t *testing.T) {
	kernel, initrd := guestFor(t, "stock")
	sc, _ := scenario.Lookup("surprise-idle")
	for name, hooks := range map[string]scenario.Hooks{
		"qemu killed before the removal": {AfterTrigger: func(m *machine.Machine) { m.Kill() }},
		"qemu killed after the removal":  {AfterRemoval: func(m *machine.Machine) { m.Kill() }},
		"agent silent after the removal": {AfterRemoval: func(m *machine.Machine) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Freeze qemu-ga inside the guest: the agent socket stays
			// open but nothing answers.
			m.Agent.Exec(ctx, guestagent.Background("kill -STOP $(pidof qemu-ga)", "/dev/null"))
		}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			v, err := scenario.Run(ctx, scenario.Trial{Scenario: sc, KernelName: "stock", Kernel: kernel, Initrd: initrd,
				Artifacts: t.TempDir(), Hooks: hooks})
			if err != nil {
				t.Fatal(err)
			}
			if v.Outcome != scenario.InfraError {
				t.Fatalf("got %s (%s), want INFRA-ERROR", v.Outcome, v.Reason)
			}
			t.Logf("reason: %s", v.Reason)
		})
	}
}

func TestBadTrialInput(t *testing.T) {
	sc, _ := scenario.Lookup("surprise-idle")
	ctx := context.Background()
	for name, tr := range map[string]scenario.Trial{
		"missing kernel":   {Scenario: sc, Kernel: "/nonexistent/bzImage", Initrd: "/etc/hostname"},
		"offset too large": {Scenario: sc, Kernel: "/etc/hostname", Initrd: "/etc/hostname", Params: scenario.Params{Offset: time.Hour}},
		"invalid scenario": {Scenario: scenario.Scenario{Name: "x", Trigger: "reboot"}, Kernel: "/etc/hostname", Initrd: "/etc/hostname"},
		"negative offset":  {Scenario: sc, Kernel: "/etc/hostname", Initrd: "/etc/hostname", Params: scenario.Params{Offset: -time.Second}},
	} {
		if _, err := scenario.Run(ctx, tr); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
