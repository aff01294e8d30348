package trial

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/yank-dev/yank/anchor"
	"github.com/yank-dev/yank/gdbstub"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
)

// Anchored cuts (Params.Anchor): a breakpoint at the anchor's address is
// armed through QEMU's gdbstub right before the trigger starts, so no hit
// can come before it is in place. The trigger then starts on its own
// goroutine, because the hit may come before the guest agent has even
// answered the exec (the guest stands still at the breakpoint until the
// cut is made). A hit before the trigger's YANK-T0 line lifts the
// breakpoint until T0 (the function also runs for other reasons);
// on the N-th hit after it every vCPU is stopped: with no delay the
// prepared cut fires during that stop (the guest is at the anchor at the
// cut, to the instruction), then the breakpoint is removed and the guest
// resumed; with a delay the guest is resumed first and the cut fires that
// long after the hit. The window is still judged from the guest's
// evidence (scenario.JudgeWindow), with the stop as one more look.

// ResolveAnchor checks an anchor spec against a kernel: its System.map
// (or vmlinux) beside the bzImage, the symbol and the offset. Every
// error names the kernel and what to do.
func ResolveAnchor(spec, bzImage string) (anchor.Anchor, uint64, *anchor.Symbols, error) {
	a, err := anchor.Parse(spec)
	if err != nil {
		return a, 0, nil, err
	}
	syms, err := anchor.Lookup(bzImage)
	if err != nil {
		return a, 0, nil, err
	}
	addr, err := syms.Address(a)
	if err != nil {
		return a, 0, nil, fmt.Errorf("kernel %s: %w", bzImage, err)
	}
	return a, addr, syms, nil
}

// armed is an anchored cut waiting for its hit. From arm on, one
// goroutine (watch) owns the stub's stop replies until the decisive hit:
// a hit before the trigger's T0 (the anchor's function also runs for
// other reasons: writeback, the sampler) is stepped over and not
// counted, so the guest never waits at a breakpoint for a trigger that
// cannot start while it stands there.
type armed struct {
	a    anchor.Anchor
	addr uint64
	kind gdbstub.BreakKind
	gdb  *gdbstub.Client

	// t0 waits up to wait for the trigger's YANK-T0 line on the console
	// and reports whether it is there: a hit before it is not the
	// trigger's.
	t0     func(ctx context.Context, wait time.Duration) bool
	result chan watched // the decisive hit, or why there is none
	cancel context.CancelFunc
	done   chan struct{} // watch returned; early and hits are then final
	early  int           // hits before T0, stepped over
	hits   int           // hits after T0
}

type watched struct {
	stop gdbstub.Stop
	err  error
}

// earlyWait is how long a hit waits for T0 to show before it counts as
// before the trigger: the guest stands still at the hit, so a T0 line it
// printed before is already on its way through the serial console. On
// libvirt that way runs through libvirtd's console stream, which a
// loaded host can hold up for tens of ms (with 10 ms, such a delay
// would count the trigger's own hit as early and leave the trial
// UNREACHED: a review's finding, not seen in a run); a real early
// hit costs this once per trial, as the breakpoint then stays lifted
// until T0.
const earlyWait = 500 * time.Millisecond

// arm connects to the guest's gdbstub (which stops the guest), inserts
// the breakpoint, resumes the guest and starts watching for hits.
func (r *runner) arm(ctx context.Context) bool {
	a, addr, syms, err := ResolveAnchor(r.p.Anchor, r.t.Kernel)
	if err != nil {
		r.infra("anchor: %v", err) // Run checked it: the kernel changed under us
		return false
	}
	kind, kindName := gdbstub.Software, "software"
	if r.m.Accel == machine.AccelKVM {
		// A debug register: nothing written into the guest's text.
		kind, kindName = gdbstub.Hardware, "hardware"
	}
	r.v.Anchor = &scenario.AnchorHit{Spec: r.p.Anchor, Symbol: a.Symbol, Address: fmt.Sprintf("%#x", addr), Symbols: syms.Source,
		Breakpoint: kindName, Hit: a.Hit, Delay: scenario.Duration(r.p.Offset)}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	gdb, err := r.m.GDB(actx)
	if err != nil {
		if errors.Is(err, machine.ErrGDBUnsupported) {
			r.infra("anchored cut %s: %v; cut at a time offset instead (-cut-at offset)", r.p.Anchor, err)
		} else {
			r.infra("anchored cut %s: %v", r.p.Anchor, err)
		}
		return false
	}
	mark := r.m.Console.Mark()
	t0 := func(ctx context.Context, wait time.Duration) bool {
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		_, err := r.m.Console.Wait(wctx, mark, scenario.TriggerMarker+" ")
		return err == nil
	}
	g := &armed{a: a, addr: addr, kind: kind, gdb: gdb, t0: t0, result: make(chan watched, 1), done: make(chan struct{})}
	r.armed = g
	if err := gdb.SetBreakpoint(actx, kind, addr); err != nil {
		close(g.done)
		r.infra("anchored cut %s: breakpoint at %#x: %v", r.p.Anchor, addr, err)
		return false
	}
	if err := gdb.Continue(actx); err != nil {
		close(g.done)
		r.infra("anchored cut %s: resuming the guest: %v", r.p.Anchor, err)
		return false
	}
	r.v.Anchor.Armed = time.Now()
	wctx, wcancel := context.WithCancel(ctx)
	g.cancel = wcancel
	go g.watch(wctx)
	r.note("anchor %s armed: %s breakpoint at %#x (%s)", r.p.Anchor, kindName, addr, syms.Source)
	return true
}

// watch handles stops until the N-th hit after T0 (sent on result with
// the guest stopped there), an error, or ctx's end.
func (g *armed) watch(ctx context.Context) {
	defer close(g.done)
	for {
		st, err := g.gdb.WaitStop(ctx)
		if err != nil {
			g.result <- watched{err: err}
			return
		}
		if st.Signal != 5 {
			// Stopped from elsewhere (a monitor stop): not a hit.
			if err := g.gdb.Continue(ctx); err != nil {
				g.result <- watched{st, err}
				return
			}
			continue
		}
		if !g.t0(ctx, earlyWait) {
			// The function runs for something else before the trigger
			// (writeback, the sampler): lift the breakpoint until T0
			// rather than stop the guest at every call.
			g.early++
			if err := g.rearmAtT0(ctx); err != nil {
				g.result <- watched{st, err}
				return
			}
			continue
		}
		g.hits++
		if g.hits >= g.a.Hit {
			g.result <- watched{st, nil}
			return
		}
		if err := g.stepOver(ctx); err != nil {
			g.result <- watched{st, err}
			return
		}
	}
}

// rearmAtT0 lifts the breakpoint, lets the guest run until the
// trigger's T0 line shows, then stops it for a moment to put the
// breakpoint back. A hit between T0 and the re-arm (a few ms) is not
// seen; the first one after it counts.
func (g *armed) rearmAtT0(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := g.gdb.ClearBreakpoint(sctx, g.kind, g.addr)
	if err == nil {
		err = g.gdb.Continue(sctx)
	}
	cancel()
	if err != nil {
		return err
	}
	if !g.t0(ctx, time.Hour) { // until T0, or the watch's end
		return ctx.Err()
	}
	sctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := g.gdb.Interrupt(sctx); err != nil {
		return err
	}
	if err := g.gdb.SetBreakpoint(sctx, g.kind, g.addr); err != nil {
		return err
	}
	return g.gdb.Continue(sctx)
}

// errUnreached: the anchor's hit did not come (the trial is UNREACHED).
var errUnreached = errors.New("anchor not reached")

// waitAnchor waits for the anchor's N-th hit after T0, within the anchor
// budget after T0, and returns with the guest stopped there. trig is the
// trigger's result: a trigger that fails ends the wait (the trial is
// already INFRA-ERROR); started says whether it has returned yet.
func (r *runner) waitAnchor(ctx context.Context, trig <-chan bool) (st gdbstub.Stop, started bool, err error) {
	g := r.armed
	// Until the trigger reports T0, the budget runs from the arm plus
	// the trigger's own deadlines (its exec and its marker, 25 s).
	budget := time.NewTimer(25*time.Second + r.p.AnchorBudget)
	defer budget.Stop()
	var w watched
wait:
	for {
		select {
		case w = <-g.result:
			break wait
		case ok := <-trig:
			// The trigger has returned either way: its one result is
			// taken, so the caller must not wait for it again.
			started, trig = true, nil
			if !ok {
				w.err = errTriggerFailed
				break wait
			}
			budget.Reset(time.Until(r.v.Timeline.Trigger.Add(r.p.AnchorBudget)))
		case <-budget.C:
			w.err = fmt.Errorf("%w within %s after T0", errUnreached, r.p.AnchorBudget)
			break wait
		case <-ctx.Done():
			w.err = ctx.Err()
			break wait
		}
	}
	g.cancel()
	<-g.done
	r.v.Anchor.Hits, r.v.Anchor.Early = g.hits, g.early
	if g.early > 0 {
		r.note("anchor %s: hit before T0 (not the trigger's): breakpoint lifted until T0", r.p.Anchor)
	}
	if errors.Is(w.err, errUnreached) {
		w.err = fmt.Errorf("%w: %d of %d hits", w.err, g.hits, g.a.Hit)
	}
	return w.stop, started, w.err
}

// resumeAtAnchor lets the guest go after the cut at the anchor (once:
// later calls do nothing), recording when.
func (r *runner) resumeAtAnchor(ctx context.Context) {
	an := r.v.Anchor
	if an == nil || !an.Resumed.IsZero() {
		return
	}
	r.resumeErr = r.release(ctx)
	an.Resumed = time.Now()
	an.Paused = scenario.Duration(an.Resumed.Sub(an.HitHost))
}

// errTriggerFailed: the trigger failed while the cut waited (its own
// INFRA-ERROR is the verdict).
var errTriggerFailed = errors.New("the trigger failed")

// stepOver lifts the breakpoint for one instruction on the vCPU that hit
// it, puts it back and resumes.
func (g *armed) stepOver(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := g.gdb.ClearBreakpoint(sctx, g.kind, g.addr); err != nil {
		return err
	}
	if _, err := g.gdb.Step(sctx); err != nil {
		return err
	}
	if err := g.gdb.SetBreakpoint(sctx, g.kind, g.addr); err != nil {
		return err
	}
	return g.gdb.Continue(sctx)
}

// release lets the guest go for good: stops it if it runs (so the stub
// takes packets), then D (breakpoints removed, guest resumed), then the
// connection closes. Bounded: a dead QEMU must not hold the trial.
func (r *runner) release(ctx context.Context) error {
	g := r.armed
	if g == nil || g.gdb == nil {
		return nil
	}
	if g.cancel != nil {
		g.cancel() // the watcher holds the client while it waits
	}
	<-g.done
	defer func() { g.gdb.Close(); g.gdb = nil }()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if g.gdb.Running() {
		if _, err := g.gdb.Interrupt(dctx); err != nil {
			return err
		}
	}
	return g.gdb.Detach(dctx)
}

// anchoredRemove starts the trigger, waits for the anchor's hit and
// fires the removal there; nil when the trial ended before a removal
// (UNREACHED or INFRA-ERROR).
func (r *runner) anchoredRemove(ctx context.Context) *removalState {
	trig := make(chan bool, 1)
	go func() { trig <- r.trigger(ctx) }()
	// The trigger's goroutine must be done before the trial goes on:
	// it writes the timeline and may decide INFRA-ERROR.
	triggerDone := func(started bool) bool { return started || <-trig }
	rs := &removalState{done: make(chan struct{})}
	st, started, err := r.waitAnchor(ctx, trig)
	if err != nil {
		relErr := r.release(ctx)
		if !triggerDone(started) || errors.Is(err, errTriggerFailed) {
			return nil
		}
		if errors.Is(err, errUnreached) {
			r.decide(scenario.Unreached, fmt.Sprintf("the guest never reached anchor %s (%s %s): %v; no cut was made, nothing was tested", r.p.Anchor, r.v.Anchor.Symbol, r.v.Anchor.Address, err))
		} else {
			r.infra("waiting for anchor %s: %v", r.p.Anchor, errors.Join(err, relErr))
		}
		r.stopSampler(ctx)
		return nil
	}
	an := r.v.Anchor
	an.HitHost, an.Thread = st.At, st.Thread
	r.note("anchor %s hit (hit %d, vCPU %s)", r.p.Anchor, an.Hits, st.Thread)
	ok := true
	if r.p.Offset == 0 {
		// The guest is stopped at the anchor: cut now; fire lets it go
		// right after the cut (resumeAtAnchor).
		r.atAnchor = true
		ok = r.fire(ctx, rs)
		r.atAnchor = false
		r.resumeAtAnchor(ctx) // if fire failed before the cut
		if r.resumeErr != nil && ok {
			r.infra("resuming the guest after the cut at anchor %s: %v", r.p.Anchor, r.resumeErr)
			ok = false
		}
		r.cutStopped = st.At // the guest clock stood still from the hit to the resume
	} else {
		if err := r.release(ctx); err != nil {
			r.infra("resuming the guest at anchor %s: %v", r.p.Anchor, err)
			ok = false
		}
		an.Resumed = time.Now()
		an.Paused = scenario.Duration(an.Resumed.Sub(st.At))
		if ok {
			select {
			case <-time.After(time.Until(st.At.Add(r.p.Offset))):
				ok = r.fire(ctx, rs)
			case <-ctx.Done():
				r.infra("cancelled before the removal: %v", ctx.Err())
				ok = false
			}
		}
	}
	if !triggerDone(started) || !ok {
		return nil
	}
	an.SinceT0 = scenario.Duration(st.At.Sub(r.v.Timeline.Trigger))
	r.note("anchor %s was hit %s after T0 on the host", r.p.Anchor, time.Duration(an.SinceT0).Round(time.Millisecond))
	r.afterRemoval()
	return rs
}
