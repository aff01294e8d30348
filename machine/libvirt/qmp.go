package libvirt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/qmp"
)

// QMPTransport is QMP through libvirt (a qmp.Transport): commands go through the monitor
// passthrough (virDomainQemuMonitorCommand, the call behind `virsh
// qemu-monitor-command`) and events come from libvirt's QEMU monitor event
// subscription (virConnectDomainQemuMonitorEventRegister). libvirt keeps
// QEMU's reply object, error classes included, so a qmp.Client on top of it
// behaves as on the socket. libvirt owns the monitor: the domain is marked
// "tainted: custom-monitor", which is expected for a test harness.
type QMPTransport struct {
	l   *golibvirt.Libvirt
	dom golibvirt.Domain

	mu     sync.Mutex
	cancel context.CancelFunc
	ended  func(error)
	closed bool
	stop   chan struct{}
}

// NewQMPTransport returns a transport for dom on the connection l. The
// connection stays the caller's: Close ends the subscription only.
func NewQMPTransport(l *golibvirt.Libvirt, dom golibvirt.Domain) *QMPTransport {
	return &QMPTransport{l: l, dom: dom, stop: make(chan struct{})}
}

// DialQMP is qmp.NewWithTransport over a QMPTransport.
func DialQMP(ctx context.Context, l *golibvirt.Libvirt, dom golibvirt.Domain, opts ...qmp.Option) (*qmp.Client, error) {
	return qmp.NewWithTransport(ctx, NewQMPTransport(l, dom), opts...)
}

// Command implements qmp.Transport.
func (t *QMPTransport) Command(ctx context.Context, cmd []byte) ([]byte, error) {
	type result struct {
		out string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// go-libvirt calls take no context: a call abandoned at ctx's end
		// finishes (or fails with the connection) in the background.
		out, err := t.l.QEMUDomainMonitorCommand(t.dom, string(cmd), 0)
		ch <- result{out, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, qmpError("monitor command", r.err, t.l)
		}
		return []byte(r.out), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.l.Disconnected():
		return nil, fmt.Errorf("%w: libvirt connection lost", qmp.ErrClosed)
	}
}

// Start implements qmp.Transport.
func (t *QMPTransport) Start(emit func(time.Time, qmp.Event), ended func(error)) error {
	ctx, cancel := context.WithCancel(context.Background())
	events, err := t.l.SubscribeQEMUEvents(ctx, t.dom.Name)
	if err != nil {
		cancel()
		return qmpError("subscribing to QEMU events", err, t.l)
	}
	t.mu.Lock()
	t.cancel, t.ended = cancel, ended
	t.mu.Unlock()
	go func() {
		for e := range events {
			recv := time.Now()
			ev := qmp.Event{Event: e.Event}
			ev.Timestamp.Seconds = int64(e.Seconds)
			ev.Timestamp.Microseconds = int64(e.Microseconds)
			if len(e.Details) > 0 {
				if err := json.Unmarshal(e.Details, &ev.Data); err != nil {
					ev.Data = map[string]any{"undecodable": string(e.Details)}
				}
			}
			emit(recv, ev)
		}
		// The channel closes when we cancel (Close) or the connection drops.
		t.mu.Lock()
		closed := t.closed
		t.mu.Unlock()
		if closed {
			ended(qmp.ErrClosed)
		} else {
			ended(errors.New("libvirt connection lost"))
		}
	}()
	return nil
}

// Close implements qmp.Transport. The libvirt connection is left open.
func (t *QMPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return nil
}

// qmpError wraps a go-libvirt error, and says when the connection is
// gone (calls fail with ErrInterrupted or a socket error then).
func qmpError(what string, err error, l *golibvirt.Libvirt) error {
	if !l.IsConnected() || errors.Is(err, golibvirt.ErrInterrupted) {
		return fmt.Errorf("libvirt %s: %w: libvirt connection lost (%v)", what, qmp.ErrClosed, err)
	}
	return fmt.Errorf("libvirt %s: %w", what, err)
}

var _ qmp.Transport = (*QMPTransport)(nil)
