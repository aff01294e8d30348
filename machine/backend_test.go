package machine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend counts checks; it never starts guests.
type fakeBackend struct {
	name string
	cap  int
	mu   sync.Mutex
	err  error
	n    int
}

func (f *fakeBackend) Name() string { return f.name }
func (f *fakeBackend) Start(context.Context, Spec, Options) (*Machine, error) {
	return nil, errors.New("fake")
}
func (f *fakeBackend) GuestCapacity() int { return f.cap }
func (f *fakeBackend) Check(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.err
}

func TestPoolSpreadsByCapacity(t *testing.T) {
	a, b := &fakeBackend{name: "a", cap: 2}, &fakeBackend{name: "b", cap: 1}
	p, err := NewPool(PoolMember{Backend: a}, PoolMember{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if p.Capacity() != 3 {
		t.Fatalf("capacity %d, want 3", p.Capacity())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[string]int{}
	releases := map[string]func(){}
	for i := 0; i < 3; i++ {
		be, rel, err := p.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[be.Name()]++
		releases[be.Name()] = rel
	}
	if got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("slots %v, want a:2 b:1", got)
	}
	// Full: the next Acquire waits for a release.
	done := make(chan string)
	go func() {
		be, _, err := p.Acquire(ctx)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- be.Name()
	}()
	select {
	case n := <-done:
		t.Fatalf("Acquire on a full pool returned %s", n)
	case <-time.After(100 * time.Millisecond):
	}
	releases["b"]()
	releases["b"]() // a second call is a no-op
	if n := <-done; n != "b" {
		t.Fatalf("after b's release got %s", n)
	}
}

func TestPoolSkipsDownBackends(t *testing.T) {
	a, b := &fakeBackend{name: "a", cap: 1, err: errors.New("connection refused")}, &fakeBackend{name: "b", cap: 1}
	p, _ := NewPool(PoolMember{Backend: a}, PoolMember{Backend: b})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	be, rel, err := p.Acquire(ctx)
	if err != nil || be.Name() != "b" {
		t.Fatalf("got %v %v, want b", be, err)
	}
	rel()
	// a is down and not rechecked within RecheckAfter.
	be, rel, _ = p.Acquire(ctx)
	rel()
	if be.Name() != "b" || a.n != 1 {
		t.Fatalf("got %s, a checked %d times; want b and one check", be.Name(), a.n)
	}
	b.mu.Lock()
	b.err = errors.New("gone too")
	b.mu.Unlock()
	_, _, err = p.Acquire(ctx)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "gone too") {
		t.Fatalf("all down: got %v, want both errors", err)
	}
}
