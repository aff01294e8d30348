package kernels_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
)

// Estimate scales the reference builds by the probe and the CPU count,
// as a range, unless this machine's own builds are known.
func TestEstimateScales(t *testing.T) {
	builds := []kernels.Pending{{Name: "stock", Cold: true, Tree: "6.1"}, {Name: "rfc-v3", Base: "stock", Tree: "6.1"}}
	lo1, hi1, here := kernels.Estimate(builds, time.Second, nil)
	if here || lo1 <= 0 || hi1 < 2*lo1 {
		t.Errorf("from the references: %s to %s (here %v), want a range wider than 2x (the references differ 3x)", lo1, hi1, here)
	}
	if lo2, hi2, _ := kernels.Estimate(builds, 2*time.Second, nil); (lo2-2*lo1).Abs() > time.Millisecond || (hi2-2*hi1).Abs() > time.Millisecond {
		t.Errorf("a probe twice as slow gives %s-%s, want 2 x %s-%s", lo2, hi2, lo1, hi1)
	}
	if lo, _, _ := kernels.Estimate(builds[:1], time.Second, nil); lo >= lo1 || lo <= lo1/2 {
		t.Errorf("cold stock alone %s, with the variant %s: the cold build should be most of it", lo, lo1)
	}
	measured := map[string]kernels.BuildTimes{"6.1": {Cold: 200 * time.Second, Incremental: 20 * time.Second}}
	if lo, hi, here := kernels.Estimate(builds, time.Second, measured); !here || lo != 220*time.Second || hi != lo {
		t.Errorf("from this machine's builds: %s-%s (here %v), want exactly 3m40s", lo, hi, here)
	}
	if _, _, here := kernels.Estimate(append(builds, kernels.Pending{Name: "stock-6.12", Cold: true, Tree: "6.12"}), time.Second, measured); here {
		t.Error("a 6.12 build with only 6.1 measured here was called measured")
	}
	if lo, hi, _ := kernels.Estimate(nil, time.Second, nil); lo != 0 || hi != 0 {
		t.Error("nothing to build should take no time")
	}
}

// MeasuredHere takes the newest full and incremental builds per source
// from the cache entries' meta.json, and leaves out other -j counts.
func TestMeasuredHere(t *testing.T) {
	root := t.TempDir()
	jobs := runtime.NumCPU()
	for name, meta := range map[string]string{
		"a": fmt.Sprintf(`{"release":"6.1.192","source":"tarball","incremental":false,"make_lines":1707,"total_seconds":230,"jobs":%d,"created":"2026-12-07T01:00:00Z"}`, jobs),
		"b": fmt.Sprintf(`{"release":"6.1.192","source":"tarball","incremental":false,"make_lines":1707,"total_seconds":250,"jobs":%d,"created":"2026-12-07T02:00:00Z"}`, jobs),
		"c": fmt.Sprintf(`{"release":"6.1.192","source":"tarball","incremental":true,"make_lines":183,"total_seconds":32,"jobs":%d,"created":"2026-12-07T01:30:00Z"}`, jobs),
		"d": fmt.Sprintf(`{"release":"6.12.118","source":"tarball","incremental":false,"make_lines":1841,"total_seconds":326,"jobs":%d,"created":"2026-12-07T01:00:00Z"}`, jobs+1),
		"e": fmt.Sprintf(`{"release":"6.1.192+","source":"tree git:b56a","incremental":false,"make_lines":338,"total_seconds":34,"jobs":%d,"created":"2026-12-07T01:00:00Z"}`, jobs),
	} {
		dir := filepath.Join(root, "kernels", name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(meta), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := kernels.MeasuredHere(root)
	if g := got["6.1"]; g.Cold != 250*time.Second || g.Incremental != 32*time.Second {
		t.Errorf("6.1: %+v, want the newest cold (250 s) and the incremental (32 s)", g)
	}
	if g, ok := got["6.12"]; ok && g != (kernels.BuildTimes{}) {
		t.Errorf("6.12: %+v, want nothing (built with another -j)", g)
	}
	if g := got["tree"]; g.Cold != 0 {
		t.Errorf("tree: %+v, want no full build (338 Kbuild lines is a partial one)", g)
	}
}

// With an empty cache, a run of stock and rfc-v3 announces stock cold and
// rfc-v3 on it, with an estimate from a real compile probe.
func TestAnnounceBuilds(t *testing.T) {
	e2e.Require(t)
	specs, err := kernels.ParseSpecs("stock,rfc-v3,debian")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := kernels.AnnounceBuilds(context.Background(), specs, t.TempDir(), &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	want := "kernels to build first: stock (cold, 6.1 source), rfc-v3 (on stock): roughly "
	if !strings.HasPrefix(out.String(), want) {
		t.Errorf("got %q, want it to start %q", out.String(), want)
	}
	probe, err := kernels.ProbeCompile(context.Background())
	if err != nil || probe <= 0 {
		t.Fatalf("probe %s: %v", probe, err)
	}
	t.Logf("probe here %s with %d CPUs", probe, runtime.NumCPU())
}
