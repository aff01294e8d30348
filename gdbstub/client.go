// Package gdbstub is a client of the GDB remote serial protocol, as
// QEMU's gdbstub speaks it: enough to stop a guest at a kernel address
// and let it go again (breakpoints, continue, single step, interrupt,
// detach, memory reads). yank's anchored cuts use it to remove a device
// at the instant the guest reaches a function (trial's anchor).
//
// No maintained Go library fits: delve's pkg/proc/gdbserial speaks the
// protocol but is bound to delve's process model (a debugserver or rr
// target with an executable and threads), not a whole-system stub, so
// this is a small client of its own. gdbstubtest is its fake server.
//
// Protocol: packets are "$data#cc" (cc the modulo-256 sum of data in
// hex), each acknowledged with '+'; a stop is reported by a stop reply
// ("T05thread:01;", "S05") that arrives when the target stops, long
// after the "c" that resumed it. QEMU stops the whole VM (every vCPU)
// when a client connects and at every stop; it resumes it on c, s and D.
package gdbstub

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BreakKind selects how a breakpoint is made.
type BreakKind int

const (
	// Software is Z0. Under TCG QEMU checks it at translation, without
	// writing the guest's memory; under KVM it patches in an int3.
	Software BreakKind = 0
	// Hardware is Z1: a debug register (4 on x86), nothing written.
	Hardware BreakKind = 1
)

// Stop is a stop reply.
type Stop struct {
	Signal int    // 5 (SIGTRAP) at a breakpoint or step, 2 (SIGINT) on an interrupt or a stop from elsewhere
	Thread string // the stop reply's thread field (QEMU: the vCPU, "p1.2" or "02"), "" if none
	Raw    string // the packet as received
	At     time.Time
}

// Client is one connection to a stub. Calls are serialized; a stop reply
// that arrives while no call waits for one is kept for the next WaitStop.
type Client struct {
	conn net.Conn

	mu      sync.Mutex // one exchange at a time
	packets chan packet
	readErr error
	done    chan struct{}
	// running: the target was resumed and has not reported a stop yet.
	running bool
}

type packet struct {
	data string
	at   time.Time
}

// ErrClosed is returned once the connection is gone.
var ErrClosed = errors.New("gdbstub: connection closed")

// Dial connects to a stub ("unix", path or "tcp", host:port), bounded by
// ctx. QEMU stops the guest on connect; the returned Client's target is
// stopped until Continue or Detach.
func Dial(ctx context.Context, network, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("gdbstub: dial %s %s: %w", network, addr, err)
	}
	c := NewClient(conn)
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// handshake asks what the stub supports (qSupported) and drops the stop
// replies that come before its answer: QEMU stops the guest when a
// client connects and reports that stop ("T02") unasked.
func (c *Client) handshake(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.send(ctx, "qSupported"); err != nil {
		return err
	}
	for {
		p, err := c.next(ctx)
		if err != nil {
			return fmt.Errorf("gdbstub: qSupported: %w", err)
		}
		if !isStopReply(p.data) {
			return nil
		}
	}
}

// NewClient runs the protocol over conn (Dial, or a test's pipe).
func NewClient(conn net.Conn) *Client {
	c := &Client{conn: conn, packets: make(chan packet, 16), done: make(chan struct{})}
	go c.read()
	return c
}

// Close drops the connection. It does not resume the target or remove
// breakpoints: call Detach first (QEMU keeps them after a disconnect).
func (c *Client) Close() error { return c.conn.Close() }

// read splits the byte stream into packets, acknowledging each.
func (c *Client) read() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	for {
		b, err := r.ReadByte()
		if err != nil {
			c.readErr = err
			return
		}
		switch b {
		case '+', '-':
			// Acks of what we sent. A '-' (bad checksum on their side)
			// would ask for a resend; over a socket it does not happen.
			continue
		case '$':
		default:
			continue // noise between packets
		}
		body, err := r.ReadString('#')
		if err != nil {
			c.readErr = err
			return
		}
		body = body[:len(body)-1]
		sum := make([]byte, 2)
		if _, err := r.Read(sum[:1]); err != nil {
			c.readErr = err
			return
		}
		if _, err := r.Read(sum[1:]); err != nil {
			c.readErr = err
			return
		}
		at := time.Now()
		want, perr := strconv.ParseUint(string(sum), 16, 8)
		if perr != nil || byte(want) != checksum(body) {
			c.conn.Write([]byte{'-'})
			continue
		}
		c.conn.Write([]byte{'+'})
		c.packets <- packet{decodeRLE(unescape(body)), at}
	}
}

func checksum(s string) byte {
	var sum byte
	for i := 0; i < len(s); i++ {
		sum += s[i]
	}
	return sum
}

// unescape undoes the binary escape: '}' then the byte xor 0x20.
func unescape(s string) string {
	if !strings.Contains(s, "}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '}' && i+1 < len(s) {
			i++
			b.WriteByte(s[i] ^ 0x20)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// decodeRLE expands "x*n": the byte before '*' repeated n-29 more times.
func decodeRLE(s string) string {
	if !strings.Contains(s, "*") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '*' && i > 0 && i+1 < len(s) {
			n := int(s[i+1]) - 29
			prev := s[i-1]
			for ; n > 0; n-- {
				b.WriteByte(prev)
			}
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Encode frames data as a packet ("$data#cc"), escaping what must be.
func Encode(data string) []byte {
	var b strings.Builder
	for i := 0; i < len(data); i++ {
		switch ch := data[i]; ch {
		case '$', '#', '}', '*':
			b.WriteByte('}')
			b.WriteByte(ch ^ 0x20)
		default:
			b.WriteByte(ch)
		}
	}
	esc := b.String()
	return []byte(fmt.Sprintf("$%s#%02x", esc, checksum(esc)))
}

func (c *Client) send(ctx context.Context, data string) error {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
		defer c.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := c.conn.Write(Encode(data)); err != nil {
		return fmt.Errorf("gdbstub: sending %q: %w", data, err)
	}
	return nil
}

// next waits for the next packet.
func (c *Client) next(ctx context.Context) (packet, error) {
	select {
	case p := <-c.packets:
		return p, nil
	case <-c.done:
		select {
		case p := <-c.packets:
			return p, nil
		default:
		}
		return packet{}, fmt.Errorf("%w: %v", ErrClosed, c.readErr)
	case <-ctx.Done():
		return packet{}, fmt.Errorf("gdbstub: waiting for the stub: %w", ctx.Err())
	}
}

// isStopReply: a stop reply packet ("T05...", "S05", exit "W00"/"X09").
func isStopReply(p string) bool {
	if len(p) < 3 {
		return false
	}
	switch p[0] {
	case 'T', 'S', 'W', 'X':
		_, err := strconv.ParseUint(p[1:3], 16, 8)
		return err == nil
	}
	return false
}

// Request sends a packet and returns the reply. A stop reply that
// arrives first (the target stopped on its own while we asked something
// else) is an error: callers wait for stops with WaitStop, before asking.
func (c *Client) Request(ctx context.Context, data string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.send(ctx, data); err != nil {
		return "", err
	}
	p, err := c.next(ctx)
	if err != nil {
		return "", fmt.Errorf("gdbstub: %q: %w", data, err)
	}
	if isStopReply(p.data) && data != "?" {
		return "", fmt.Errorf("gdbstub: %q: got the stop reply %q: the target stopped while it was thought stopped already", data, p.data)
	}
	if strings.HasPrefix(p.data, "E") && len(p.data) == 3 {
		return p.data, fmt.Errorf("gdbstub: %q: error %s", data, p.data)
	}
	return p.data, nil
}

// StopReason asks why the target is stopped ("?").
func (c *Client) StopReason(ctx context.Context) (Stop, error) {
	r, err := c.Request(ctx, "?")
	if err != nil {
		return Stop{}, err
	}
	return parseStop(r, time.Now())
}

func parseStop(p string, at time.Time) (Stop, error) {
	if !isStopReply(p) {
		return Stop{}, fmt.Errorf("gdbstub: want a stop reply, got %q", p)
	}
	sig, _ := strconv.ParseUint(p[1:3], 16, 8)
	s := Stop{Signal: int(sig), Raw: p, At: at}
	if p[0] == 'T' {
		for _, f := range strings.Split(p[3:], ";") {
			if k, v, ok := strings.Cut(f, ":"); ok && k == "thread" {
				s.Thread = v
			}
		}
	}
	return s, nil
}

func (c *Client) setBreak(ctx context.Context, op byte, kind BreakKind, addr uint64) error {
	cmd := fmt.Sprintf("%c%d,%x,1", op, kind, addr)
	r, err := c.Request(ctx, cmd)
	if err != nil {
		return err
	}
	switch r {
	case "OK":
		return nil
	case "":
		return fmt.Errorf("gdbstub: %q: the stub does not support this breakpoint kind", cmd)
	}
	return fmt.Errorf("gdbstub: %q: unexpected reply %q", cmd, r)
}

// SetBreakpoint inserts a breakpoint at addr (Z0 or Z1). The target must
// be stopped.
func (c *Client) SetBreakpoint(ctx context.Context, kind BreakKind, addr uint64) error {
	return c.setBreak(ctx, 'Z', kind, addr)
}

// ClearBreakpoint removes it (z0 or z1).
func (c *Client) ClearBreakpoint(ctx context.Context, kind BreakKind, addr uint64) error {
	return c.setBreak(ctx, 'z', kind, addr)
}

// ReadMemory reads n bytes at a guest virtual address (m).
func (c *Client) ReadMemory(ctx context.Context, addr uint64, n int) ([]byte, error) {
	r, err := c.Request(ctx, fmt.Sprintf("m%x,%x", addr, n))
	if err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(r)
	if err != nil {
		return nil, fmt.Errorf("gdbstub: reading %d bytes at %#x: reply %q: %w", n, addr, r, err)
	}
	return b, nil
}

// resume sends c or s, whose reply is the stop that ends them.
func (c *Client) resume(ctx context.Context, cmd string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.send(ctx, cmd); err != nil {
		return err
	}
	c.running = true
	return nil
}

// Continue resumes the target (c); WaitStop returns its next stop.
func (c *Client) Continue(ctx context.Context) error { return c.resume(ctx, "c") }

// Step executes one instruction on the vCPU that last stopped (s) and
// returns the stop that ends it.
func (c *Client) Step(ctx context.Context) (Stop, error) {
	if err := c.resume(ctx, "s"); err != nil {
		return Stop{}, err
	}
	return c.WaitStop(ctx)
}

// WaitStop waits for the stop reply that ends a Continue. ctx ending
// leaves the target running: Interrupt stops it.
func (c *Client) WaitStop(ctx context.Context) (Stop, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		p, err := c.next(ctx)
		if err != nil {
			return Stop{}, err
		}
		if !isStopReply(p.data) {
			// A console output packet ("O...") or a stray reply.
			continue
		}
		c.running = false
		return parseStop(p.data, p.at)
	}
}

// Interrupt stops a running target (the 0x03 byte) and returns the stop
// it reports. On a stopped target it does nothing.
func (c *Client) Interrupt(ctx context.Context) (Stop, error) {
	c.mu.Lock()
	running := c.running
	if running {
		if _, err := c.conn.Write([]byte{0x03}); err != nil {
			c.mu.Unlock()
			return Stop{}, fmt.Errorf("gdbstub: interrupt: %w", err)
		}
	}
	c.mu.Unlock()
	if !running {
		return Stop{}, nil
	}
	return c.WaitStop(ctx)
}

// Detach removes every breakpoint this client set and resumes the target
// (D). The target must be stopped (Interrupt first).
func (c *Client) Detach(ctx context.Context) error {
	r, err := c.Request(ctx, "D")
	if err != nil {
		return err
	}
	if r != "OK" {
		return fmt.Errorf("gdbstub: detach: unexpected reply %q", r)
	}
	return nil
}

// Running reports whether the target was resumed and has not stopped.
func (c *Client) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}
