package gdbstub_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/gdbstub"
	"github.com/yank-dev/yank/gdbstub/gdbstubtest"
)

func dial(t *testing.T, s *gdbstubtest.Stub) *gdbstub.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gdbstub.Dial(ctx, "unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitRunning waits until the stub has taken a resume (it is handled on
// the stub's own goroutine).
func waitRunning(t *testing.T, s *gdbstubtest.Stub) {
	t.Helper()
	for i := 0; i < 500 && !s.Running(); i++ {
		time.Sleep(2 * time.Millisecond)
	}
	if !s.Running() {
		t.Fatal("the stub was never resumed")
	}
}

// The anchored cut's sequence: connect (the stub's unasked T02 is
// dropped), break, continue, hit, clear, step over, detach.
func TestBreakpointStopAndDetach(t *testing.T) {
	s := gdbstubtest.New(t)
	c := dial(t, s)
	ctx := timeout(t)
	const addr uint64 = 0xffffffff8113cb02
	if err := c.SetBreakpoint(ctx, gdbstub.Software, addr); err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Breakpoints()[addr]; !ok || k != 0 {
		t.Fatalf("breakpoints %v, want a Z0 at %#x", s.Breakpoints(), addr)
	}
	if s.Hit(addr, 2) {
		t.Fatal("a stopped target reported a hit")
	}
	if err := c.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, s)
	if !c.Running() {
		t.Error("client does not know the target runs")
	}
	if s.Hit(addr+1, 2) {
		t.Fatal("a hit where no breakpoint is")
	}
	before := time.Now()
	if !s.Hit(addr, 2) {
		t.Fatal("no hit at the breakpoint")
	}
	stop, err := c.WaitStop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stop.Signal != 5 || stop.Thread != "p01.02" || stop.At.Before(before) {
		t.Errorf("stop %+v, want SIGTRAP on thread p01.02 stamped after the hit", stop)
	}
	if c.Running() {
		t.Error("client thinks the target runs after its stop")
	}
	if err := c.ClearBreakpoint(ctx, gdbstub.Software, addr); err != nil {
		t.Fatal(err)
	}
	if len(s.Breakpoints()) != 0 {
		t.Errorf("breakpoints left: %v", s.Breakpoints())
	}
	if st, err := c.Step(ctx); err != nil || st.Signal != 5 {
		t.Errorf("step: %+v, %v", st, err)
	}
	if err := c.SetBreakpoint(ctx, gdbstub.Hardware, addr); err != nil {
		t.Fatal(err)
	}
	if err := c.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Detached() || !s.Running() || len(s.Breakpoints()) != 0 {
		t.Errorf("after detach: detached %v running %v breakpoints %v", s.Detached(), s.Running(), s.Breakpoints())
	}
	want := []string{"qSupported", "Z0,ffffffff8113cb02,1", "c", "z0,ffffffff8113cb02,1", "s", "Z1,ffffffff8113cb02,1", "D"}
	if got := s.Packets(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("packets %q, want %q", got, want)
	}
}

func TestRefusedKindIsAnError(t *testing.T) {
	s := gdbstubtest.New(t)
	s.RefuseKind(1)
	c := dial(t, s)
	err := c.SetBreakpoint(timeout(t), gdbstub.Hardware, 0x1000)
	if err == nil || !strings.Contains(err.Error(), "does not support") {
		t.Fatalf("Z1 on a stub without it: %v", err)
	}
	if err := c.SetBreakpoint(timeout(t), gdbstub.Software, 0x1000); err != nil {
		t.Errorf("Z0 still works: %v", err)
	}
}

func TestInterruptAndMemory(t *testing.T) {
	s := gdbstubtest.New(t)
	s.SetMemory(0x2000, []byte{0x0f, 0x1f, 0x44, 0x00})
	c := dial(t, s)
	ctx := timeout(t)
	b, err := c.ReadMemory(ctx, 0x2000, 4)
	if err != nil || string(b) != "\x0f\x1f\x44\x00" {
		t.Fatalf("memory %x, %v", b, err)
	}
	if st, err := c.Interrupt(ctx); err != nil || st.Raw != "" {
		t.Errorf("interrupting a stopped target: %+v, %v (want nothing sent)", st, err)
	}
	if err := c.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, s)
	st, err := c.Interrupt(ctx)
	if err != nil || st.Signal != 2 {
		t.Fatalf("interrupt: %+v, %v, want SIGINT", st, err)
	}
	if s.Running() {
		t.Error("stub still running after the interrupt")
	}
}

// A hung stub must not hang the caller: every call ends with its context.
func TestSilentStubEndsWithTheContext(t *testing.T) {
	s := gdbstubtest.New(t)
	c := dial(t, s)
	s.Silence()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.SetBreakpoint(ctx, gdbstub.Software, 0x1000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %s", d)
	}
}

func TestDialFailsClearly(t *testing.T) {
	_, err := gdbstub.Dial(timeout(t), "unix", "/nonexistent/gdb.sock")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/gdb.sock") {
		t.Fatalf("got %v, want an error naming the socket", err)
	}
}

func TestClosedConnection(t *testing.T) {
	a, b := net.Pipe()
	c := gdbstub.NewClient(a)
	b.Close()
	_, err := c.Request(timeout(t), "?")
	if err == nil {
		t.Fatal("a request on a closed pipe succeeded")
	}
}

// Framing: escapes on the way out, checksums, run-length and escapes on
// the way in (QEMU compresses long replies such as register dumps).
func TestFraming(t *testing.T) {
	if got := string(gdbstub.Encode("m1,2")); got != "$m1,2#fc" {
		t.Errorf("Encode: %s", got)
	}
	if got := string(gdbstub.Encode("a$b")); got != "$a}\x04b#44" {
		t.Errorf("Encode escape: %q", got)
	}
	a, b := net.Pipe()
	c := gdbstub.NewClient(a)
	defer c.Close()
	go func() {
		buf := make([]byte, 64)
		b.Read(buf) // the request
		// "0* " is '0' then 3 more (' ' is 32, 32-29 = 3): "0000";
		// "}]" is an escaped '}' (']' ^ 0x20).
		reply := "0* }]"
		var sum byte
		for i := 0; i < len(reply); i++ {
			sum += reply[i]
		}
		b.Write([]byte("+$" + reply + "#" + hex2(sum)))
		b.Read(buf) // our ack
	}()
	r, err := c.Request(timeout(t), "g")
	if err != nil || r != "0000}" {
		t.Errorf("reply %q, %v, want 0000}", r, err)
	}
}

func hex2(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}
