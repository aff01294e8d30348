package main

import (
	"testing"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/scenario"
)

// TestScenarioFileEndToEnd runs a user's scenario file as shipped
// (scenario/examples/unbind-race-argv.json: unbind-race written with an
// argv trigger) with no -scenarios, so the file's own scenario runs. On
// stock its unbind sits in del_gendisk at the cut as the built-in
// unbind-race's does, and hangs every time it is there (TestScenariosOn
// KnownBadKernels); the trigger is the user's argv, so the classification
// names it: command-del_gendisk. A cut outside the window is MISSED, never
// PASS; nothing is INFRA-ERROR.
func TestScenarioFileEndToEnd(t *testing.T) {
	e2e.Require(t)
	rows := runWindowMatrixCmd(t, "-kernels", "stock", "-scenario-file", "../../scenario/examples/unbind-race-argv.json")
	if len(rows) != 1 {
		t.Fatalf("want the file's one scenario at its one offset, got %d rows", len(rows))
	}
	v := rows[0].Verdict
	switch {
	case v.Scenario != "my-unbind-race" || v.Device != "virtio-blk":
		t.Fatalf("ran %s on %s", v.Scenario, v.Device)
	case v.Outcome == scenario.Hang:
		if v.Classification != "command-del_gendisk" || v.StuckTask == nil || v.StuckTask.Role != "trigger:command" || v.Window == nil || !v.Window.Hit {
			t.Fatalf("HANG without the user's trigger stuck in del_gendisk inside the window: %s", v)
		}
	case v.Outcome == scenario.Missed:
		t.Logf("the cut missed the window (%s): the file ran, the race was not tested", v.Window)
	default:
		t.Fatalf("got %s, want HANG (or MISSED): %s", v.Outcome, v)
	}
}

// TestAnchoredScenarioFile runs a user's file that names its anchor
// (scenario/examples/unbind-race-anchored.json: cut_at del_gendisk,
// cut_delays 0s and 5ms). Cut while the user's unbind stands at
// del_gendisk, stock hangs every time (0 MISSED in the anchored trials
// measured); 5 ms later it is still there with writeback outstanding
// (HANG), or the window's judge says MISSED: never PASS.
func TestAnchoredScenarioFile(t *testing.T) {
	e2e.Require(t)
	rows := runWindowMatrixCmd(t, "-kernels", "stock", "-scenario-file", "../../scenario/examples/unbind-race-anchored.json")
	if len(rows) != 2 {
		t.Fatalf("want the file's scenario at its two delays, got %d rows", len(rows))
	}
	for _, r := range rows {
		v := r.Verdict
		if r.Anchor != "del_gendisk" || v.Anchor == nil || v.Anchor.Hits != 1 || v.Anchor.Symbol != "del_gendisk" {
			t.Errorf("+%s: cut at %q, anchor facts %+v", r.Offset, r.Anchor, v.Anchor)
			continue
		}
		switch {
		case v.Outcome == scenario.Hang && v.Classification == "command-del_gendisk" && v.Window != nil && v.Window.Hit:
		case r.Offset > 0 && v.Outcome == scenario.Missed:
			t.Logf("+%s: the cut missed the window (%s)", r.Offset, v.Window)
		default:
			t.Errorf("+%s: %s (%s; window %+v), want HANG command-del_gendisk with the window hit", r.Offset, v.Outcome, v.Reason, v.Window)
		}
	}
}
