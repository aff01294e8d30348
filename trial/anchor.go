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
// can come before it is in place; the hits are counted from then. On the
// N-th hit every vCPU is stopped: with no delay the prepared cut fires
// during that stop (the guest is at the anchor at the cut, to the
// instruction), then the breakpoint is removed and the guest resumed;
// with a delay the guest is resumed first and the cut fires that long
// after the hit. The window is still judged from the guest's evidence
// (scenario.JudgeWindow), with the stop as one more look.

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

// armed is an anchored cut waiting for its hit.
type armed struct {
	a    anchor.Anchor
	addr uint64
	kind gdbstub.BreakKind
	gdb  *gdbstub.Client
}

// arm connects to the guest's gdbstub (which stops the guest), inserts
// the breakpoint and resumes the guest.
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
	r.armed = &armed{a: a, addr: addr, kind: kind, gdb: gdb}
	if err := gdb.SetBreakpoint(actx, kind, addr); err != nil {
		r.infra("anchored cut %s: breakpoint at %#x: %v", r.p.Anchor, addr, err)
		return false
	}
	if err := gdb.Continue(actx); err != nil {
		r.infra("anchored cut %s: resuming the guest: %v", r.p.Anchor, err)
		return false
	}
	r.v.Anchor.Armed = time.Now()
	r.note("anchor %s armed: %s breakpoint at %#x (%s)", r.p.Anchor, kindName, addr, syms.Source)
	return true
}

// errUnreached: the anchor's hit did not come (the trial is UNREACHED).
var errUnreached = errors.New("anchor not reached")

// waitAnchor waits for the anchor's N-th hit, within the anchor budget
// after T0, and returns with the guest stopped there. Earlier hits are
// stepped over (the breakpoint lifted for one instruction).
func (r *runner) waitAnchor(ctx context.Context) (gdbstub.Stop, error) {
	g := r.armed
	deadline := r.v.Timeline.Trigger.Add(r.p.AnchorBudget)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for {
		st, err := g.gdb.WaitStop(wctx)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return gdbstub.Stop{}, fmt.Errorf("%w: %d of %d hits within %s after T0", errUnreached, r.v.Anchor.Hits, g.a.Hit, r.p.AnchorBudget)
			}
			return gdbstub.Stop{}, err
		}
		if st.Signal != 5 {
			// Stopped from elsewhere (a monitor stop): not a hit.
			if err := g.gdb.Continue(ctx); err != nil {
				return st, err
			}
			continue
		}
		r.v.Anchor.Hits++
		if r.v.Anchor.Hits >= g.a.Hit {
			return st, nil
		}
		r.note("anchor %s: hit %d of %d (vCPU %s), stepping over", r.p.Anchor, r.v.Anchor.Hits, g.a.Hit, st.Thread)
		if err := r.stepOver(ctx); err != nil {
			return st, err
		}
	}
}

// stepOver lifts the breakpoint for one instruction on the vCPU that hit
// it, puts it back and resumes.
func (r *runner) stepOver(ctx context.Context) error {
	g := r.armed
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

// anchoredCut waits for the anchor and fires the removal there; it
// returns false when the trial ended (UNREACHED or INFRA-ERROR).
func (r *runner) anchoredCut(ctx context.Context, fire func() bool) bool {
	st, err := r.waitAnchor(ctx)
	if err != nil {
		relErr := r.release(ctx)
		if errors.Is(err, errUnreached) {
			r.decide(scenario.Unreached, fmt.Sprintf("the guest never reached anchor %s (%s %s): %v; no cut was made, nothing was tested", r.p.Anchor, r.v.Anchor.Symbol, r.v.Anchor.Address, err))
		} else {
			r.infra("waiting for anchor %s: %v", r.p.Anchor, errors.Join(err, relErr))
		}
		r.stopSampler(ctx)
		return false
	}
	an := r.v.Anchor
	an.HitHost, an.Thread = st.At, st.Thread
	an.SinceT0 = scenario.Duration(st.At.Sub(r.v.Timeline.Trigger))
	r.note("anchor %s hit (hit %d, vCPU %s, %s after T0 on the host)", r.p.Anchor, an.Hits, st.Thread, time.Duration(an.SinceT0).Round(time.Millisecond))
	if r.p.Offset == 0 {
		// The guest is stopped at the anchor: cut now, then let it go.
		r.atAnchor = true
		ok := fire()
		r.atAnchor = false
		err := r.release(ctx)
		an.Resumed = time.Now()
		an.Paused = scenario.Duration(an.Resumed.Sub(st.At))
		if err != nil && ok {
			r.infra("resuming the guest after the cut at anchor %s: %v", r.p.Anchor, err)
			return false
		}
		r.cutStopped = st.At // the guest clock stood still from the hit to the resume
		return ok
	}
	if err := r.release(ctx); err != nil {
		r.infra("resuming the guest at anchor %s: %v", r.p.Anchor, err)
		return false
	}
	an.Resumed = time.Now()
	an.Paused = scenario.Duration(an.Resumed.Sub(st.At))
	select {
	case <-time.After(time.Until(st.At.Add(r.p.Offset))):
	case <-ctx.Done():
		r.infra("cancelled before the removal: %v", ctx.Err())
		return false
	}
	return fire()
}
