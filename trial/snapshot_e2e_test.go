package trial_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/snapshot"
	"github.com/yank-dev/yank/trial"
)

// runFrom runs a trial of a built-in scenario with snapshots from store
// (nil: cold boot).
func runFrom(t *testing.T, store *snapshot.Store, variant, name string, offset time.Duration) scenario.Verdict {
	t.Helper()
	kernel, initrd := guestFor(t, variant)
	sc, err := scenario.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, err := trial.Run(ctx, trial.Trial{
		Scenario: sc, Params: scenario.Params{Offset: offset}, KernelName: variant,
		Kernel: kernel, Initrd: initrd, Artifacts: filepath.Join(t.TempDir(), "artifacts"),
		Progress: testLog{t}, Snapshots: store,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(v.String())
	return v
}

// TestSnapshotVerdictsEqualColdBoot: unbind-race at 2 s is deterministic
// (HANG unbind-del_gendisk on stock, PASS on rfc-v3-virtio, see
// TestScenariosOnKnownBadKernels): a cold boot and two trials from one
// snapshot (the first makes it) give the same verdict, and the two
// restored trials start from the same guest: the same dirty, writeback
// and in-flight figures in the sampler's first look before T0.
func TestSnapshotVerdictsEqualColdBoot(t *testing.T) {
	e2e.Require(t)
	store, err := snapshot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		variant string
		want    scenario.Outcome
		class   string
	}{
		{"stock", scenario.Hang, "unbind-del_gendisk"},
		{"rfc-v3-virtio", scenario.Pass, ""},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			cold := runFrom(t, nil, tc.variant, "unbind-race", 2*time.Second)
			if cold.Start == nil || cold.Start.Kind != scenario.StartCold || cold.Start.Fallback != "" {
				t.Fatalf("cold trial's start: %+v", cold.Start)
			}
			var firsts []*scenario.Sample
			for i, wantMade := range []bool{true, false} {
				v := runFrom(t, store, tc.variant, "unbind-race", 2*time.Second)
				if v.Outcome != cold.Outcome || v.Classification != cold.Classification || v.Outcome != tc.want || v.Classification != tc.class {
					t.Fatalf("restored trial %d: %s/%s, cold boot %s/%s, want %s/%s", i, v.Outcome, v.Classification, cold.Outcome, cold.Classification, tc.want, tc.class)
				}
				s := v.Start
				if s == nil || s.Kind != scenario.StartSnapshot || s.Made != wantMade || s.Snapshot == "" {
					t.Fatalf("restored trial %d's start: %+v (want a snapshot, made=%v)", i, s, wantMade)
				}
				if _, err := os.Stat(filepath.Join(v.Artifacts, "snapshot-console.log")); err != nil {
					t.Errorf("restored trial %d keeps no console of the boot it came from: %v", i, err)
				}
				if v.Window == nil || v.Window.First == nil {
					t.Fatalf("restored trial %d: no sampler look before T0", i)
				}
				firsts = append(firsts, v.Window.First)
			}
			a, b := firsts[0], firsts[1]
			t.Logf("first looks: %s | %s", a, b)
			if a.DirtyKB != b.DirtyKB || a.WriteKB != b.WriteKB || a.InFlight != b.InFlight || a.Device != b.Device {
				t.Fatalf("trials restored from one snapshot did not start alike:\n  %s\n  %s", a, b)
			}
		})
	}
}

// TestSnapshotFallbackOnDamagedState: a snapshot whose state QEMU cannot
// load (bytes overwritten in place, so its size still matches) falls
// back to a cold boot that says so, gives the verdict a cold boot gives,
// and leaves the cache without the damaged entry.
func TestSnapshotFallbackOnDamagedState(t *testing.T) {
	e2e.Require(t)
	store, err := snapshot.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first := runFrom(t, store, "stock", "unbind-race", 2*time.Second)
	if first.Start == nil || first.Start.Kind != scenario.StartSnapshot {
		t.Fatalf("no snapshot made: %+v", first.Start)
	}
	state := filepath.Join(store.Dir, first.Start.Snapshot, "state")
	f, err := os.OpenFile(state, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = 0xa5
	}
	if _, err := f.WriteAt(junk, st.Size()/4); err != nil {
		t.Fatal(err)
	}
	f.Close()

	v := runFrom(t, store, "stock", "unbind-race", 2*time.Second)
	if v.Start == nil || v.Start.Kind != scenario.StartCold || !strings.Contains(v.Start.Fallback, "did not restore") {
		t.Fatalf("damaged snapshot: start %+v, want a cold boot saying the snapshot did not restore", v.Start)
	}
	if v.Outcome != scenario.Hang || v.Classification != "unbind-del_gendisk" {
		t.Fatalf("fallback trial: %s/%s, want HANG/unbind-del_gendisk", v.Outcome, v.Classification)
	}
	if _, err := os.Stat(filepath.Join(store.Dir, first.Start.Snapshot)); !os.IsNotExist(err) {
		t.Fatalf("the damaged snapshot is still in the cache: %v", err)
	}
	again := runFrom(t, store, "stock", "unbind-race", 2*time.Second)
	if again.Start == nil || again.Start.Kind != scenario.StartSnapshot || !again.Start.Made {
		t.Fatalf("after a fallback the next trial should make the snapshot afresh: %+v", again.Start)
	}
}
