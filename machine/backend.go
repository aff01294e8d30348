package machine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/yank-dev/yank/guestagent"
)

// Backend runs guests. Local runs a QEMU child process of yank (the
// default); machine/libvirt runs a transient domain on any libvirtd yank
// can reach. Every backend turns the same Spec into the same guest and
// gives a Machine whose QMP client, agent client and console behave the
// same, so scenarios and suites do not know which one they run on.
//
// A backend builds its Machine with NewMachine and attaches an Instance
// (the running guest as the backend sees it).
type Backend interface {
	// Name identifies the backend in logs and reports: "local", or a
	// libvirt URI.
	Name() string
	// Start launches a guest for spec and connects its QMP client; the
	// guest is still booting when Start returns (Machine.WaitReady).
	Start(ctx context.Context, spec Spec, opts Options) (*Machine, error)
}

// Instance is a running guest as its backend sees it: what a Machine needs
// beyond its QMP client and console. The local QEMU process and a libvirt
// domain implement it.
type Instance interface {
	// DialAgent connects to the guest agent; WaitReady calls it once the
	// guest's init reports ready.
	DialAgent(ctx context.Context, log *slog.Logger) (*guestagent.Client, error)
	// Kill stops the guest at once and returns when it is gone (the
	// backend has called Machine.ReportExit) or cannot be stopped.
	// Machine.Kill calls it only while the guest runs.
	Kill()
	// Close releases what the instance holds (connections,
	// subscriptions). Machine.Close calls it once, after Kill.
	Close() error
	// DiagnosticsName says what the backend writes to
	// Machine.Diagnostics ("qemu stderr", "libvirt"): the heading of that
	// text in the error of a guest that died.
	DiagnosticsName() string
}

// Local runs QEMU as a child process (Start's default).
var Local Backend = localBackend{}

// Checker is implemented by backends that can tell cheaply whether they
// can start guests now (a libvirt backend dials its daemon). Pool skips a
// backend whose check fails.
type Checker interface {
	Check(ctx context.Context) error
}

// Capacitor is implemented by backends with a guest capacity of their own
// (a libvirt host's #N); Pool uses it when a member gives none.
type Capacitor interface {
	GuestCapacity() int
}

// PoolMember is a backend with the number of guests it may run at once.
type PoolMember struct {
	Backend  Backend
	Capacity int // 0: the backend's own (Capacitor), else 1
}

// Pool spreads guests over backends, each with a capacity: Acquire waits
// for a free slot on a backend that passes its Check, preferring the least
// loaded. A backend whose check fails is left out for RecheckAfter, so one
// unreachable host does not stop the rest of a matrix.
type Pool struct {
	RecheckAfter time.Duration // default 15 s

	mu      sync.Mutex
	members []*poolMember
	changed chan struct{}
}

type poolMember struct {
	b         Backend
	capacity  int
	busy      int
	downSince time.Time
	downErr   error
}

// NewPool returns a pool over members (at least one).
func NewPool(members ...PoolMember) (*Pool, error) {
	if len(members) == 0 {
		return nil, errors.New("machine pool: no backends")
	}
	p := &Pool{changed: make(chan struct{})}
	for _, m := range members {
		if m.Backend == nil {
			return nil, errors.New("machine pool: nil backend")
		}
		c := m.Capacity
		if c == 0 {
			if cp, ok := m.Backend.(Capacitor); ok {
				c = cp.GuestCapacity()
			}
		}
		if c <= 0 {
			c = 1
		}
		p.members = append(p.members, &poolMember{b: m.Backend, capacity: c})
	}
	return p, nil
}

// Capacity is the total number of guests the pool runs at once.
func (p *Pool) Capacity() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, m := range p.members {
		n += m.capacity
	}
	return n
}

// Backends lists the pool's backends in order.
func (p *Pool) Backends() []Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	var bs []Backend
	for _, m := range p.members {
		bs = append(bs, m.b)
	}
	return bs
}

// Acquire waits for a slot and returns its backend and a release func
// (call it once, after the machine is closed). It fails when ctx ends, or
// at once when every backend is down (with each one's error).
func (p *Pool) Acquire(ctx context.Context) (Backend, func(), error) {
	recheck := p.RecheckAfter
	if recheck == 0 {
		recheck = 15 * time.Second
	}
	for {
		p.mu.Lock()
		var best *poolMember
		allDown := true
		for _, m := range p.members {
			down := !m.downSince.IsZero() && time.Since(m.downSince) < recheck
			if !down {
				allDown = false
			}
			if down || m.busy >= m.capacity {
				continue
			}
			if best == nil || m.busy*best.capacity < best.busy*m.capacity {
				best = m
			}
		}
		if best == nil && allDown {
			var errs []string
			for _, m := range p.members {
				errs = append(errs, fmt.Sprintf("%s: %v", m.b.Name(), m.downErr))
			}
			p.mu.Unlock()
			return nil, nil, fmt.Errorf("machine pool: no backend reachable (%s)", strings.Join(errs, "; "))
		}
		if best != nil {
			best.busy++ // reserve while checking
		}
		changed := p.changed
		p.mu.Unlock()

		if best != nil {
			var err error
			if c, ok := best.b.(Checker); ok {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = c.Check(cctx)
				cancel()
			}
			p.mu.Lock()
			if err == nil {
				best.downSince, best.downErr = time.Time{}, nil
				p.mu.Unlock()
				var once sync.Once
				return best.b, func() { once.Do(func() { p.release(best) }) }, nil
			}
			best.busy--
			best.downSince, best.downErr = time.Now(), err
			p.signal()
			p.mu.Unlock()
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-changed:
		case <-time.After(time.Second): // a down backend's recheck time may have come
		}
	}
}

func (p *Pool) release(m *poolMember) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.busy--
	p.signal()
}

// signal wakes Acquire waiters; p.mu is held.
func (p *Pool) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
}
