package guestagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Client talks to one guest agent. It is safe for concurrent use; requests
// are serialized because QGA replies carry no id.
type Client struct {
	path   string
	opts   options
	closed atomic.Bool

	mu       sync.Mutex // one request in flight; guards everything below
	conn     net.Conn
	r        *bufio.Reader
	needSync bool // the reply stream may hold stale data

	tr      Transport // set instead of a socket: one request per round trip
	request []byte    // the request send queued for recv (transport only)

	connMu sync.Mutex // guards conn for Close, which must not wait for mu
}

// Dial connects to the agent socket and syncs. It retries both connecting
// and syncing until ctx ends (default: the client timeout), because the
// socket may not exist yet or the guest agent may still be booting.
func Dial(ctx context.Context, socketPath string, opts ...Option) (*Client, error) {
	c := &Client{path: socketPath, opts: defaultOptions()}
	for _, o := range opts {
		o(&c.opts)
	}
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	start := time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	var lastErr error
	for {
		if c.conn == nil {
			lastErr = c.connect(ctx)
		}
		if c.conn != nil {
			attempt, cancelAttempt := context.WithTimeout(ctx, c.opts.syncAttempt)
			lastErr = c.sync(attempt)
			cancelAttempt()
			if lastErr == nil {
				c.log(slog.LevelInfo, "qga connected", "socket", socketPath, "took", time.Since(start))
				return c, nil
			}
		}
		if ctx.Err() != nil {
			break
		}
		if c.conn == nil {
			// Socket missing or refused: do not spin.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	connected := c.conn != nil
	c.dropConn()
	took := time.Since(start).Round(time.Millisecond)
	if connected {
		return nil, fmt.Errorf("guestagent: dial %s: %w: no sync reply within %v: %w",
			socketPath, ErrAgentSilent, took, ctx.Err())
	}
	return nil, fmt.Errorf("guestagent: dial %s: not connected after %v: %w (last error: %v)",
		socketPath, took, ctx.Err(), lastErr)
}

// Close closes the connection; calls in progress fail with ErrClosed.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.tr != nil {
		return c.tr.Close()
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Do runs one raw agent command. args is marshalled as "arguments" (nil
// omits it); the "return" value is unmarshalled into result unless nil.
// Agent errors come back as *Error.
func (c *Client) Do(ctx context.Context, command string, args, result any) error {
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.do(ctx, command, args, result)
}

// do is Do with mu held and a deadline on ctx.
func (c *Client) do(ctx context.Context, command string, args, result any) error {
	start := time.Now()
	if err := c.ready(ctx, command); err != nil {
		return err
	}
	if err := c.send(ctx, command, args); err != nil {
		return c.ioError(ctx, command, start, err)
	}
	rep, err := c.recv(ctx)
	if err != nil {
		return c.ioError(ctx, command, start, err)
	}
	took := time.Since(start)
	if rep.Err != nil {
		rep.Err.Command = command
		c.log(slog.LevelDebug, "qga error", "cmd", command, "class", rep.Err.Class, "desc", rep.Err.Desc, "took", took)
		return rep.Err
	}
	c.log(slog.LevelDebug, "qga reply", "cmd", command, "bytes", len(rep.Return), "took", took)
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(rep.Return, result); err != nil {
		return fmt.Errorf("guestagent: %s: decoding return %s: %w", command, abbreviate(rep.Return), err)
	}
	return nil
}

// ready makes sure there is a connection with an in-order reply stream.
func (c *Client) ready(ctx context.Context, command string) error {
	if c.closed.Load() {
		return fmt.Errorf("guestagent: %s: %w", command, ErrClosed)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("guestagent: %s: not sent: %w", command, ctx.Err())
	}
	if c.tr != nil {
		return nil // the transport keeps its own reply order
	}
	if c.conn == nil {
		// Lost after EOF: one redial; Dial is the place for patient retries.
		if err := c.connect(ctx); err != nil {
			return fmt.Errorf("guestagent: %s: reconnect: %w", command, err)
		}
	}
	if !c.needSync {
		return nil
	}
	start := time.Now()
	c.log(slog.LevelInfo, "qga resync", "before", command)
	if err := c.sync(ctx); err != nil {
		if ctx.Err() != nil || errors.Is(err, ErrAgentSilent) {
			return fmt.Errorf("guestagent: %s: resync: %w: no sync reply after %v: %w",
				command, ErrAgentSilent, time.Since(start).Round(time.Millisecond), ctxErr(ctx))
		}
		return fmt.Errorf("guestagent: %s: resync: %w", command, err)
	}
	return nil
}

// connect dials the socket once. The new stream must be synced first.
func (c *Client) connect(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return err
	}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.closed.Load() {
		conn.Close()
		return ErrClosed
	}
	c.conn = conn
	c.r = bufio.NewReaderSize(conn, 64<<10)
	c.needSync = true
	return nil
}

// dropConn forgets a broken connection; the next call redials.
func (c *Client) dropConn() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.conn != nil {
		c.conn.Close()
	}
	c.conn, c.r = nil, nil
}

// armDeadline makes conn I/O obey ctx: its deadline, and cancellation by
// pushing the deadline into the past. Call the returned func when done.
func (c *Client) armDeadline(ctx context.Context) func() {
	conn := c.conn
	deadline, _ := ctx.Deadline() // zero (none) is fine for SetDeadline
	conn.SetDeadline(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		// If the func already started, let it finish: a past deadline set
		// after we return would break the next call on this connection.
		if !stop() {
			<-fired
		}
	}
}

// send writes one request line.
func (c *Client) send(ctx context.Context, command string, args any) error {
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}{Execute: command, Arguments: args}
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding request: %w", err)
	}
	c.log(slog.LevelDebug, "qga request", "cmd", command, "bytes", len(line))
	if c.tr != nil {
		c.request = line // recv makes the round trip
		return nil
	}
	defer c.armDeadline(ctx)()
	_, err = c.conn.Write(append(line, '\n'))
	return err
}

// recv reads the next reply line.
func (c *Client) recv(ctx context.Context) (reply, error) {
	if c.tr != nil {
		line, err := c.tr.RoundTrip(ctx, c.request)
		c.request = nil
		if err != nil {
			return reply{}, err
		}
		return decodeReply(line)
	}
	defer c.armDeadline(ctx)()
	line, err := readLine(c.r)
	if err != nil {
		return reply{}, err
	}
	return decodeReply(line)
}

// sync re-establishes reply order: 0xFF resets the agent's lexer, then
// guest-sync-delimited with a fresh id; everything before the matching
// reply (stale replies, garbage, the lexer's error about 0xFF) is dropped.
func (c *Client) sync(ctx context.Context) error {
	c.needSync = true
	id := randomID()
	req := fmt.Sprintf(`{"execute":"guest-sync-delimited","arguments":{"id":%d}}`, id)
	defer c.armDeadline(ctx)()
	if _, err := c.conn.Write([]byte("\xff" + req + "\n")); err != nil {
		return c.syncError(ctx, err)
	}
	if err := skipToDelimiter(c.r); err != nil {
		return c.syncError(ctx, err)
	}
	for {
		line, err := readLine(c.r)
		if err != nil {
			return c.syncError(ctx, err)
		}
		rep, err := decodeReply(line)
		if err != nil || rep.Err != nil {
			continue // garbage or stale error reply
		}
		var got int64
		if json.Unmarshal(rep.Return, &got) == nil && got == id {
			c.needSync = false
			return nil
		}
	}
}

// syncError classifies a failed sync: silence is ErrAgentSilent; a dead
// connection is dropped so the next attempt redials.
func (c *Client) syncError(ctx context.Context, err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: %w", ErrAgentSilent, ctxErr(ctx))
	}
	c.dropConn()
	if c.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("sync: %w", err)
}

// ioError turns a failed exchange into an error naming the command and
// the time spent, and marks the stream for resync: a late reply may still
// be on its way.
func (c *Client) ioError(ctx context.Context, command string, start time.Time, err error) error {
	c.needSync = c.tr == nil
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case c.closed.Load():
		return fmt.Errorf("guestagent: %s: %w", command, ErrClosed)
	case isTimeout(err):
		c.log(slog.LevelWarn, "qga timeout", "cmd", command, "took", took)
		return fmt.Errorf("guestagent: %s: no reply after %v: %w", command, took, ctxErr(ctx))
	case isConnError(err):
		c.dropConn()
		return fmt.Errorf("guestagent: %s: connection lost after %v: %w", command, took, err)
	default: // undecodable reply
		return fmt.Errorf("guestagent: %s: %w", command, err)
	}
}

// withDefault applies the client timeout to a context without a deadline.
func (c *Client) withDefault(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.timeout)
}

func (c *Client) log(level slog.Level, msg string, args ...any) {
	if c.opts.logger != nil {
		c.opts.logger.Log(context.Background(), level, msg, args...)
	}
}

// Transport carries agent requests for a Client that does not own the
// agent's socket, such as libvirt's agent passthrough (machine/libvirt's
// AgentTransport). It keeps reply order itself (libvirt syncs with
// guest-sync before each command), so the Client never sends 0xFF or
// guest-sync-delimited through it.
type Transport interface {
	// RoundTrip sends one request (a JSON object with "execute" and
	// optional "arguments") and returns the agent's reply object
	// ({"return": ...} or {"error": {"class": ..., "desc": ...}}). Timeouts
	// wrap os.ErrDeadlineExceeded, a lost path to the agent wraps
	// net.ErrClosed; it must return when ctx ends.
	RoundTrip(ctx context.Context, request []byte) ([]byte, error)
	Close() error
}

// DialTransport returns a client over t once the agent answers a
// guest-ping, retrying until ctx ends (default: the client timeout): the
// guest agent may still be starting.
func DialTransport(ctx context.Context, t Transport, opts ...Option) (*Client, error) {
	c := &Client{path: "transport", opts: defaultOptions(), tr: t}
	for _, o := range opts {
		o(&c.opts)
	}
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	start := time.Now()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, max(c.opts.syncAttempt, 2*time.Second))
		err := c.Do(attempt, "guest-ping", nil, nil)
		cancelAttempt()
		if err == nil {
			c.log(slog.LevelInfo, "qga connected", "transport", fmt.Sprintf("%T", t), "took", time.Since(start))
			return c, nil
		}
		if ctx.Err() != nil {
			t.Close()
			return nil, fmt.Errorf("guestagent: %w: no reply to guest-ping within %v: %w (last error: %v)",
				ErrAgentSilent, time.Since(start).Round(time.Millisecond), ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
