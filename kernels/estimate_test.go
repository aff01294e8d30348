package kernels_test

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
)

// Estimate scales the reference builds by the probe and the CPU count.
func TestEstimateScales(t *testing.T) {
	builds := []kernels.Pending{{Name: "stock", Cold: true, Tree: "6.1"}, {Name: "rfc-v3", Base: "stock", Tree: "6.1"}}
	one := kernels.Estimate(builds, time.Second)
	if two := kernels.Estimate(builds, 2*time.Second); (two - 2*one).Abs() > time.Millisecond {
		t.Errorf("a probe twice as slow gives %s, want 2 x %s", two, one)
	}
	if cold := kernels.Estimate(builds[:1], time.Second); cold >= one || cold <= one/2 {
		t.Errorf("cold stock alone %s, with the variant %s: the cold build should be most of it", cold, one)
	}
	if kernels.Estimate(nil, time.Second) != 0 {
		t.Error("nothing to build should take no time")
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
