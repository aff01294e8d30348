package e2e

import (
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
)

func TestAgainOnStaleLook(t *testing.T) {
	stale := scenario.Verdict{Outcome: scenario.Missed, Window: &scenario.WindowEvidence{Gap: scenario.Duration(scenario.MaxSampleGap + time.Millisecond)}}
	otherMiss := scenario.Verdict{Outcome: scenario.Missed, Window: &scenario.WindowEvidence{Gap: scenario.Duration(time.Millisecond), Reason: "the trigger had already finished"}}
	hit := scenario.Verdict{Outcome: scenario.Hang, Window: &scenario.WindowEvidence{Hit: true}}
	for _, tc := range []struct {
		name  string
		runs  [][]scenario.Verdict // what each run gives
		want  int                  // runs made
		final scenario.Outcome
	}{
		{"hit at once", [][]scenario.Verdict{{hit}}, 1, scenario.Hang},
		{"another MISSED is the answer", [][]scenario.Verdict{{otherMiss}}, 1, scenario.Missed},
		{"stale, then hit", [][]scenario.Verdict{{hit, stale}, {hit, hit}}, 2, scenario.Hang},
		{"stale every time", [][]scenario.Verdict{{stale}, {stale}, {stale}, {hit}}, StaleLookRuns, scenario.Missed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			got := AgainOnStaleLook(t, func() []scenario.Verdict { n++; return tc.runs[n-1] }, func(vs []scenario.Verdict) []scenario.Verdict { return vs })
			if n != tc.want || got[len(got)-1].Outcome != tc.final {
				t.Fatalf("%d runs ending %s, want %d ending %s", n, got[len(got)-1].Outcome, tc.want, tc.final)
			}
		})
	}
}
