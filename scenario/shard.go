package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ShardSpec is -shard K/N: this is shard K (1-based) of N.
type ShardSpec struct{ K, N int }

// ParseShard reads "K/N" ("" is the whole plan: 1/1).
func ParseShard(s string) (ShardSpec, error) {
	if s == "" {
		return ShardSpec{1, 1}, nil
	}
	ks, ns, ok := strings.Cut(s, "/")
	k, kerr := strconv.Atoi(ks)
	n, nerr := strconv.Atoi(ns)
	switch {
	case !ok || kerr != nil || nerr != nil:
		return ShardSpec{}, fmt.Errorf("%q: want K/N, two whole numbers, e.g. 1/2 for the first of two shards", s)
	case n < 1:
		return ShardSpec{}, fmt.Errorf("%q: want at least 1 shard", s)
	case k < 1 || k > n:
		return ShardSpec{}, fmt.Errorf("%q: shard numbers run from 1 to %d", s, n)
	}
	return ShardSpec{k, n}, nil
}

func (s ShardSpec) String() string { return fmt.Sprintf("%d/%d", s.K, s.N) }

// ExpectedTrialTime is a trial's rough wall time on the reference machine
// (2-core TCG, from a snapshot), what shards are balanced by: about 8 s of
// restore, load, probes and teardown, plus the cut's offset or delay, plus
// the flush a graceful removal waits for (graceful-io: 25 s, 2026-12-06).
func ExpectedTrialTime(p Planned) time.Duration {
	d := 8*time.Second + p.Nominal
	if p.Scenario.Removal == RemovalGraceful {
		d += 20 * time.Second
	}
	return d
}

// cellKey keeps a cell (kernel x scenario x cut) together on one shard,
// so its snapshot is made once.
func cellKey(p Planned) string {
	return p.Kernel + "\x00" + p.Scenario.Name + "\x00" + p.Anchor + "\x00" + p.Nominal.String()
}

// Shard returns the indices in plan of shard s's trials, in plan order:
// whole cells, dealt out largest first (by expected time) to the shard
// with the least so far, ties to the lowest shard, so every shard
// computes the same split from the same plan.
func Shard(plan []Planned, s ShardSpec) []int {
	type cell struct {
		key   string
		first int
		cost  time.Duration
	}
	var cells []*cell
	byKey := map[string]*cell{}
	for i, p := range plan {
		c := byKey[cellKey(p)]
		if c == nil {
			c = &cell{key: cellKey(p), first: i}
			byKey[c.key] = c
			cells = append(cells, c)
		}
		c.cost += ExpectedTrialTime(p)
	}
	order := slices.Clone(cells)
	slices.SortStableFunc(order, func(a, b *cell) int { return int(b.cost - a.cost) })
	load := make([]time.Duration, s.N)
	owner := map[string]int{}
	for _, c := range order {
		best := 0
		for i := range load {
			if load[i] < load[best] {
				best = i
			}
		}
		owner[c.key] = best + 1
		load[best] += c.cost
	}
	var out []int
	for i, p := range plan {
		if owner[cellKey(p)] == s.K {
			out = append(out, i)
		}
	}
	return out
}

// CellKey names a trial's cell: kernel, scenario and cut.
func CellKey(p Planned) string { return cellKey(p) }

// PlanDigest identifies a whole plan (before sharding): the kernels by
// name and release, each trial's scenario, cut, offset and repeat, and
// the parameters that change a verdict. Shards of one plan carry the same
// digest; `yank report merge` refuses shards whose digests differ.
func PlanDigest(plan []Planned, releases map[string]string, params Params) string {
	h := sha256.New()
	fmt.Fprintf(h, "params %+v\n", params)
	for _, p := range plan {
		fmt.Fprintf(h, "%s %s %s %s %s %d\n", p.Kernel, releases[p.Kernel], p.Scenario.Name, p.Anchor, p.Offset, p.Repeat)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
