package main

import (
	"testing"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/scenario"
)

// TestRunSnapshotsAndNoSnapshot: `yank run` starts trials from a snapshot
// by default (the cell's first trial makes it unless the cache has it, the
// second restores it) and -no-snapshot boots cold, and verdict.json says
// which. surprise-idle on stock passes either way (or is MISSED when a
// loaded host delays the sampler's look before the cut: it is the start
// that is asserted here, not the outcome).
func TestRunSnapshotsAndNoSnapshot(t *testing.T) {
	e2e.Require(t)
	rows := runMatrixCmd(t, "-kernels", "stock", "-scenarios", "surprise-idle", "-repeat", "2")
	if len(rows) != 2 {
		t.Fatalf("want 2 trials, got %d", len(rows))
	}
	for i, r := range rows {
		v := r.Verdict
		if !judged(v.Outcome) || v.Start == nil || v.Start.Kind != scenario.StartSnapshot || v.Start.Snapshot == "" {
			t.Fatalf("trial %d: %s, start %+v; want PASS or MISSED from a snapshot", i+1, v.Outcome, v.Start)
		}
	}
	if rows[1].Verdict.Start.Made || rows[1].Verdict.Start.Snapshot != rows[0].Verdict.Start.Snapshot {
		t.Fatalf("the second trial did not restore the first one's snapshot: %+v, %+v", rows[0].Verdict.Start, rows[1].Verdict.Start)
	}
	rows = runMatrixCmd(t, "-kernels", "stock", "-scenarios", "surprise-idle", "-no-snapshot")
	if v := rows[0].Verdict; !judged(v.Outcome) || v.Start == nil || v.Start.Kind != scenario.StartCold || v.Start.Fallback != "" {
		t.Fatalf("-no-snapshot: %s, start %+v; want PASS or MISSED from a cold boot, no fallback", v.Outcome, v.Start)
	}
}

func judged(o scenario.Outcome) bool { return o == scenario.Pass || o == scenario.Missed }
