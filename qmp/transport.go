package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/yank-dev/yank/journal"
)

// Transport carries QMP for a Client that does not own QEMU's monitor
// socket, such as libvirt's monitor passthrough (machine/libvirt's
// QMPTransport).
// The Client keeps its journal, error classes, Execute, WaitEvent and the
// removal primitives unchanged on top of it.
type Transport interface {
	// Command runs one QMP command, a JSON object with "execute" and
	// optional "arguments" and no "id" (the transport matches replies
	// itself), and returns QEMU's reply object ({"return": ...} or
	// {"error": {"class": ..., "desc": ...}}) as QEMU sent it. A QMP error
	// reply is not a Go error; a failure to deliver the command is. It must
	// return when ctx ends.
	Command(ctx context.Context, cmd []byte) ([]byte, error)
	// Start begins delivering QEMU's events: emit gets each with its host
	// receive time, in order; ended gets, once, the reason the transport
	// stopped (after Close, or when the path to QEMU is lost). Start returns
	// once events are subscribed, so no event after it is missed.
	Start(emit func(time.Time, Event), ended func(error)) error
	// Close ends the transport; ended is called before Close returns or
	// soon after.
	Close() error
}

// NewWithTransport returns a client that speaks QMP through t. The
// transport's QMP session is expected to be negotiated already (libvirt
// does qmp_capabilities itself), so the greeting's version comes from
// query-version.
func NewWithTransport(ctx context.Context, t Transport, opts ...Option) (*Client, error) {
	c := New("transport", opts...)
	c.tr = t
	c.pending = map[string]chan reply{}
	c.done = make(chan struct{})
	c.events = journal.New[Event]()
	var once sync.Once
	err := t.Start(func(recv time.Time, e Event) {
		c.logger.Info("qmp event", "event", e.Event, "data", e.Data)
		c.events.AppendAt(recv, e)
	}, func(err error) {
		once.Do(func() { c.end(err) })
	})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("qmp: subscribing to events: %w", err)
	}
	if err := c.Execute(ctx, "query-version", nil, &c.greeting.Version); err != nil {
		c.Disconnect()
		return nil, err
	}
	return c, nil
}

// end records why the transport stopped and wakes every waiter.
func (c *Client) end(err error) {
	if err == nil {
		err = ErrClosed
	} else if !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %v", ErrClosed, err)
	}
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
	c.events.Close(err)
	close(c.done)
}

// roundTripTransport is roundTrip over c.tr: no id, one reply per call.
func (c *Client) roundTripTransport(ctx context.Context, name string, msg map[string]json.RawMessage) (reply, error) {
	if err := c.Err(); err != nil {
		return reply{}, fmt.Errorf("qmp %s: %w", name, err)
	}
	delete(msg, "id")
	line, err := json.Marshal(msg)
	if err != nil {
		return reply{}, fmt.Errorf("qmp %s: encoding: %w", name, err)
	}
	c.logger.Debug("qmp ->", "cmd", name, "msg", string(line))
	start := time.Now()
	raw, err := c.tr.Command(ctx, line)
	if err != nil {
		if cerr := c.Err(); cerr != nil {
			return reply{}, fmt.Errorf("qmp %s: %w", name, cerr)
		}
		if ctx.Err() != nil {
			return reply{}, fmt.Errorf("qmp %s: no reply after %s: %w", name, time.Since(start).Round(time.Millisecond), ctx.Err())
		}
		return reply{}, fmt.Errorf("qmp %s: %w", name, err)
	}
	m, err := decodeMessage(raw)
	if err != nil || m.event != nil {
		return reply{}, fmt.Errorf("qmp %s: transport returned no reply object: %q", name, truncate(raw, 200))
	}
	c.logger.Debug("qmp <-", "cmd", name, "reply", string(truncate(m.reply.raw, 512)))
	return m.reply, nil
}
