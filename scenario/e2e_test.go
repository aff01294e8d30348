package scenario_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/scenario"
)

// guestFor returns the kernel and a fitting image for a variant.
func guestFor(t *testing.T, variant string) (kernel, initrd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var k kernels.Artifact
	var err error
	if variant == "debian" {
		k, err = kernels.Debian()
	} else {
		k, err = kernels.Build(ctx, kernels.BuildOptions{Variant: variant, Progress: testLog{t}})
	}
	if err != nil {
		t.Fatalf("kernel %s: %v", variant, err)
	}
	opts := images.Options{}
	if k.ModulesDir != "" {
		opts.ModulesDir, opts.Modules = k.ModulesDir, []string{"virtio_pci", "virtio_blk", "virtio_console"}
	}
	img, err := images.Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k.BzImage, img.Path
}

type testLog struct{ t *testing.T }

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
		dir = filepath.Join(keep, variant, name)
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

func TestDebianScenarios(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset time.Duration
		want   scenario.Outcome
		class  string
	}{
		{"unbind-race", 2 * time.Second, scenario.Hang, "unbind-del_gendisk"},
		{"surprise-io", 2 * time.Second, scenario.Hang, "pciehp-del_gendisk"},
		{"surprise-idle", 0, scenario.Pass, ""},
		{"graceful-io", 2 * time.Second, scenario.Pass, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := runTrial(t, "debian", tc.name, tc.offset)
			if v.Outcome != tc.want || v.Classification != tc.class {
				t.Fatalf("got %s/%s, want %s/%s:\n%s", v.Outcome, v.Classification, tc.want, tc.class, v)
			}
		})
	}
}
