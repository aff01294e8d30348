package qmp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goqmp "github.com/digitalocean/go-qemu/qmp"

	"github.com/yank-dev/yank/journal"
)

// Event is go-qemu's event type, so events from this client and from
// go-qemu's libvirt monitor look the same to callers.
type Event = goqmp.Event

// DefaultTimeout bounds commands issued through the context-free Monitor
// interface (Connect, Run) and commands whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// Error is a QMP error reply. Class is QMP's error class (GenericError,
// CommandNotFound, DeviceNotFound, DeviceNotActive, KVMMissingCap).
type Error struct {
	Command string
	Class   string
	Desc    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// IsClass reports whether err is a QMP error of the given class.
func IsClass(err error, class string) bool {
	var qe *Error
	return errors.As(err, &qe) && qe.Class == class
}

// ErrClosed is returned for commands issued after the connection ended.
var ErrClosed = errors.New("qmp: connection closed")

// Client is a QMP client over a UNIX socket. It satisfies go-qemu's
// qmp.Monitor interface. Unlike go-qemu's SocketMonitor it matches replies
// by id, never blocks the reader on events (they go to a journal that any
// number of callers can wait on), has no line-length limit, keeps QMP error
// classes, and takes a context on every command.
type Client struct {
	path   string
	logger *slog.Logger

	conn    net.Conn
	writeMu sync.Mutex
	tr      Transport // set instead of conn when QMP goes through a Transport

	mu       sync.Mutex
	pending  map[string]chan reply
	closeErr error
	done     chan struct{}

	nextID   atomic.Uint64
	greeting Greeting
	events   *journal.Journal[Event]
}

// Greeting is QEMU's QMP banner.
type Greeting struct {
	Version      goqmp.Version `json:"version"`
	Capabilities []string      `json:"capabilities"`
}

// Option configures a Client.
type Option func(*Client)

// WithLogger logs every command, reply and event with host timestamps.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// New returns an unconnected client for the QMP socket at path; call
// Connect (Monitor interface) or use Dial.
func New(path string, opts ...Option) *Client {
	c := &Client{path: path, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Dial connects to the QMP socket at path, reads the greeting and
// negotiates capabilities.
func Dial(ctx context.Context, path string, opts ...Option) (*Client, error) {
	c := New(path, opts...)
	if err := c.ConnectContext(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Connect implements qmp.Monitor with DefaultTimeout.
func (c *Client) Connect() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return c.ConnectContext(ctx)
}

// ConnectContext connects, reads the greeting and sends qmp_capabilities.
func (c *Client) ConnectContext(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return fmt.Errorf("qmp: connect %s: %w", c.path, err)
	}
	return c.attach(ctx, conn)
}

// attach runs the handshake on an established connection (tests use pipes).
func (c *Client) attach(ctx context.Context, conn net.Conn) error {
	c.pending = map[string]chan reply{}
	c.done = make(chan struct{})
	c.events = journal.New[Event]()
	r := bufio.NewReaderSize(conn, 64*1024)

	// The greeting arrives before any command; read it under ctx.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	line, err := r.ReadBytes('\n')
	stop()
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("qmp: reading greeting from %s: %w", c.path, err)
	}
	var g struct {
		QMP *Greeting `json:"QMP"`
	}
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		conn.Close()
		return fmt.Errorf("qmp: %s did not greet with a QMP banner (got %q)", c.path, truncate(line, 200))
	}
	c.greeting = *g.QMP
	c.conn = conn
	go c.readLoop(r)
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Disconnect()
		return err
	}
	return nil
}

// Greeting returns QEMU's banner (version and capabilities).
func (c *Client) Greeting() Greeting { return c.greeting }

// Disconnect implements qmp.Monitor; it is safe to call more than once.
func (c *Client) Disconnect() error {
	if c.tr != nil {
		err := c.tr.Close()
		<-c.done
		return err
	}
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Done is closed when the connection ends (QEMU exited or Disconnect).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Events implements qmp.Monitor: every event from now on, until ctx ends or
// the connection closes. Any number of callers may subscribe; a slow
// subscriber never blocks command replies or other subscribers.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	if c.events == nil {
		return nil, ErrClosed
	}
	in := c.events.Follow(ctx, c.events.Mark())
	out := make(chan Event)
	go func() {
		defer close(out)
		for e := range in {
			select {
			case out <- e.Item:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// EventJournal gives access to every event received, with host receive
// times, for waiting (Mark + WaitEvent) and for evidence timelines.
func (c *Client) EventJournal() *journal.Journal[Event] { return c.events }

// WaitEvent waits for the first event at or after mark that matches.
func (c *Client) WaitEvent(ctx context.Context, mark int, match func(Event) bool) (journal.Entry[Event], error) {
	e, err := c.events.Wait(ctx, mark, match)
	if err != nil {
		return e, fmt.Errorf("qmp: waiting for event: %w", err)
	}
	return e, nil
}

// Run implements qmp.Monitor: command is a JSON QMP command; the reply line
// is returned as is. An "id" is added (or replaced) to match the reply.
func (c *Client) Run(command []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return c.RunContext(ctx, command)
}

// RunContext is Run with a context.
func (c *Client) RunContext(ctx context.Context, command []byte) ([]byte, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(command, &msg); err != nil {
		return nil, fmt.Errorf("qmp: command is not a JSON object: %w", err)
	}
	var name string
	if err := json.Unmarshal(msg["execute"], &name); err != nil || name == "" {
		return nil, fmt.Errorf("qmp: command has no \"execute\" string: %q", truncate(command, 200))
	}
	rep, err := c.roundTrip(ctx, name, msg)
	if err != nil {
		return nil, err
	}
	return rep.raw, rep.err(name)
}

// Execute runs a QMP command with optional arguments and decodes the
// "return" value into result (which may be nil).
func (c *Client) Execute(ctx context.Context, name string, args, result any) error {
	msg := map[string]json.RawMessage{}
	b, _ := json.Marshal(name)
	msg["execute"] = b
	if args != nil {
		ab, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("qmp %s: encoding arguments: %w", name, err)
		}
		msg["arguments"] = ab
	}
	rep, err := c.roundTrip(ctx, name, msg)
	if err != nil {
		return err
	}
	if err := rep.err(name); err != nil {
		return err
	}
	if result != nil && len(rep.Return) > 0 {
		if err := json.Unmarshal(rep.Return, result); err != nil {
			return fmt.Errorf("qmp %s: decoding reply: %w", name, err)
		}
	}
	return nil
}

type reply struct {
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	raw []byte
}

func (r reply) err(cmd string) error {
	if r.Error == nil {
		return nil
	}
	return &Error{Command: cmd, Class: r.Error.Class, Desc: r.Error.Desc}
}

func (c *Client) roundTrip(ctx context.Context, name string, msg map[string]json.RawMessage) (reply, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if c.tr != nil {
		return c.roundTripTransport(ctx, name, msg)
	}
	if c.conn == nil {
		return reply{}, fmt.Errorf("qmp %s: %w (not connected)", name, ErrClosed)
	}
	id := "yank-" + strconv.FormatUint(c.nextID.Add(1), 10)
	msg["id"], _ = json.Marshal(id)
	line, err := json.Marshal(msg)
	if err != nil {
		return reply{}, fmt.Errorf("qmp %s: encoding: %w", name, err)
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.closeErr != nil {
		err := c.closeErr
		c.mu.Unlock()
		return reply{}, fmt.Errorf("qmp %s: %w", name, err)
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	c.logger.Debug("qmp ->", "cmd", name, "msg", string(line))
	c.writeMu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	}
	_, err = c.conn.Write(append(line, '\n'))
	c.writeMu.Unlock()
	if err != nil {
		return reply{}, fmt.Errorf("qmp %s: write: %w", name, err)
	}
	start := time.Now()
	select {
	case rep := <-ch:
		c.logger.Debug("qmp <-", "cmd", name, "reply", string(truncate(rep.raw, 512)))
		return rep, nil
	case <-ctx.Done():
		return reply{}, fmt.Errorf("qmp %s: no reply after %s: %w", name, time.Since(start).Round(time.Millisecond), ctx.Err())
	case <-c.done:
		return reply{}, fmt.Errorf("qmp %s: %w", name, c.Err())
	}
}

// readLoop owns the read side: replies go to their waiter by id, events to
// the journal. Nothing here blocks on a consumer.
func (c *Client) readLoop(r *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			c.dispatch(line)
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: QEMU closed the monitor socket", ErrClosed)
	} else {
		err = fmt.Errorf("%w: %v", ErrClosed, err)
	}
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
	c.events.Close(err)
	close(c.done)
}

func (c *Client) dispatch(line []byte) {
	recv := time.Now()
	msg, err := decodeMessage(line)
	if err != nil {
		c.logger.Warn("qmp: undecodable line ignored", "err", err, "line", string(truncate(line, 200)))
		return
	}
	if msg.event != nil {
		c.logger.Info("qmp event", "event", msg.event.Event, "data", msg.event.Data)
		c.events.AppendAt(recv, *msg.event)
		return
	}
	var id string
	if json.Unmarshal(msg.reply.ID, &id) != nil {
		// A reply without our id (e.g. QEMU's reply to a command it could
		// not parse) cannot be matched; log it so it is not lost silently.
		c.logger.Warn("qmp: reply without id", "line", string(truncate(line, 200)))
		return
	}
	c.mu.Lock()
	ch := c.pending[id]
	c.mu.Unlock()
	if ch == nil {
		c.logger.Debug("qmp: late reply dropped", "id", id)
		return
	}
	ch <- msg.reply // buffered, one reply per id
}

type message struct {
	event *Event
	reply reply
}

// decodeMessage classifies one QMP line as an event or a reply.
func decodeMessage(line []byte) (message, error) {
	var probe struct {
		Event  *string          `json:"event"`
		Return *json.RawMessage `json:"return"`
		Error  *json.RawMessage `json:"error"`
		QMP    *json.RawMessage `json:"QMP"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return message{}, err
	}
	switch {
	case probe.Event != nil:
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return message{}, err
		}
		return message{event: &e}, nil
	case probe.Return != nil || probe.Error != nil:
		var r reply
		if err := json.Unmarshal(line, &r); err != nil {
			return message{}, err
		}
		if probe.Error != nil && (r.Error == nil || r.Error.Class == "") {
			return message{}, fmt.Errorf("error reply without class")
		}
		r.raw = append([]byte(nil), bytes.TrimSpace(line)...)
		return message{reply: r}, nil
	default:
		return message{}, fmt.Errorf("neither event nor reply")
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append(append([]byte(nil), b[:n]...), "..."...)
}

var _ goqmp.Monitor = (*Client)(nil)
