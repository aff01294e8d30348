package scenario

import (
	"strings"
	"testing"
	"time"
)

func TestParseShardRefusesBadInput(t *testing.T) {
	for in, want := range map[string]string{
		"3/2": `"3/2": shard numbers run from 1 to 2`,
		"0/2": `"0/2": shard numbers run from 1 to 2`,
		"a/b": `"a/b": want K/N, two whole numbers`,
		"2":   `"2": want K/N`,
		"1/0": `"1/0": want at least 1 shard`,
	} {
		if _, err := ParseShard(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseShard(%q) = %v, want %q", in, err, want)
		}
	}
	if s, err := ParseShard("2/3"); err != nil || s != (ShardSpec{2, 3}) {
		t.Errorf("ParseShard(2/3) = %v, %v", s, err)
	}
}

// Shards of a plan: disjoint, together the whole plan in order, every
// cell on one shard, the same split every time, balanced to within one
// cell's time.
func TestShardSplitsWholeCells(t *testing.T) {
	m := Matrix{Kernels: []string{"stock", "rfc-v3", "rfc-v3-virtio"}, Scenarios: Defaults(), Repeats: 2}
	plan, err := m.Expand()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 5} {
		owner := map[int]int{}
		cellOwner := map[string]int{}
		var loads []time.Duration
		var biggest time.Duration
		cellCost := map[string]time.Duration{}
		for _, p := range plan {
			cellCost[CellKey(p)] += ExpectedTrialTime(p)
		}
		for _, c := range cellCost {
			biggest = max(biggest, c)
		}
		for k := 1; k <= n; k++ {
			idx := Shard(plan, ShardSpec{k, n})
			again := Shard(plan, ShardSpec{k, n})
			if len(idx) != len(again) {
				t.Fatalf("%d/%d: not deterministic", k, n)
			}
			var load time.Duration
			for j, i := range idx {
				if again[j] != i || (j > 0 && idx[j-1] >= i) {
					t.Fatalf("%d/%d: not in plan order or not deterministic: %v", k, n, idx)
				}
				if prev, dup := owner[i]; dup {
					t.Fatalf("trial %d on shards %d and %d", i, prev, k)
				}
				owner[i] = k
				ck := CellKey(plan[i])
				if o, seen := cellOwner[ck]; seen && o != k {
					t.Fatalf("cell %q split over shards %d and %d", ck, o, k)
				}
				cellOwner[ck] = k
				load += ExpectedTrialTime(plan[i])
			}
			loads = append(loads, load)
		}
		if len(owner) != len(plan) {
			t.Fatalf("%d shards cover %d of %d trials", n, len(owner), len(plan))
		}
		lo, hi := loads[0], loads[0]
		for _, l := range loads {
			lo, hi = min(lo, l), max(hi, l)
		}
		if hi-lo > biggest {
			t.Errorf("%d shards: loads %v differ by more than one cell (%s)", n, loads, biggest)
		}
	}
}

func TestPlanDigest(t *testing.T) {
	m := Matrix{Kernels: []string{"stock"}, Scenarios: Defaults(), Repeats: 1}
	a, _ := m.Expand()
	m.Repeats = 2
	b, _ := m.Expand()
	rel := map[string]string{"stock": "6.1.192"}
	if PlanDigest(a, rel, Params{}) != PlanDigest(a, rel, Params{}) {
		t.Error("the same plan gave two digests")
	}
	if PlanDigest(a, rel, Params{}) == PlanDigest(b, rel, Params{}) {
		t.Error("plans with different repeats share a digest")
	}
	if PlanDigest(a, rel, Params{}) == PlanDigest(a, rel, Params{CPUs: 1}) {
		t.Error("plans with different parameters share a digest")
	}
	if PlanDigest(a, rel, Params{}) == PlanDigest(a, map[string]string{"stock": "6.1.191"}, Params{}) {
		t.Error("plans of different kernel releases share a digest")
	}
}
