package trial

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/yank-dev/yank/anchor"
	"github.com/yank-dev/yank/scenario"
)

// A trigger that fails while the cut waits for its anchor ends the wait,
// and waitAnchor says the trigger has returned: its one result is taken,
// and a caller that waited for it again would wait forever (make test
// hung 19 min in TestLibvirtAnchoredCut on that, 2026-12-07).
func TestWaitAnchorTakesAFailedTriggersResult(t *testing.T) {
	done := make(chan struct{})
	close(done) // no watcher runs here
	r := &runner{p: scenario.Params{AnchorBudget: time.Minute}}
	r.v.Anchor = &scenario.AnchorHit{}
	r.armed = &armed{a: anchor.Anchor{Hit: 1}, result: make(chan watched, 1), done: done, cancel: func() {}}
	trig := make(chan bool, 1)
	trig <- false
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, started, err := r.waitAnchor(ctx, trig)
	if !errors.Is(err, errTriggerFailed) || !started {
		t.Fatalf("got started=%v, %v; want started (the result was taken) and errTriggerFailed", started, err)
	}
}
