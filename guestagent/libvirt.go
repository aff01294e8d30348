package guestagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
)

// LibvirtTransport reaches the guest agent through libvirt's agent
// passthrough (virDomainQemuAgentCommand, `virsh qemu-agent-command`).
// libvirt owns the agent socket and syncs before each command; it turns
// agent error replies into libvirt errors, which this transport turns back
// into agent error replies so *Error, ErrUnknownPID and errno matching
// work as on the socket. libvirt drops the error class: it comes back as
// GenericError, or CommandNotFound for the commands libvirt reports as
// unsupported.
type LibvirtTransport struct {
	l   *libvirt.Libvirt
	dom libvirt.Domain
}

// NewLibvirtTransport returns a transport for dom's agent on the connection
// l. The connection stays the caller's.
func NewLibvirtTransport(l *libvirt.Libvirt, dom libvirt.Domain) *LibvirtTransport {
	return &LibvirtTransport{l: l, dom: dom}
}

// DialLibvirt is DialTransport over a LibvirtTransport.
func DialLibvirt(ctx context.Context, l *libvirt.Libvirt, dom libvirt.Domain, opts ...Option) (*Client, error) {
	return DialTransport(ctx, NewLibvirtTransport(l, dom), opts...)
}

// RoundTrip implements Transport.
func (t *LibvirtTransport) RoundTrip(ctx context.Context, request []byte) ([]byte, error) {
	timeout := int32(-1) // libvirt's default (5 s)
	if dl, ok := ctx.Deadline(); ok {
		secs := math.Ceil(time.Until(dl).Seconds())
		if secs < 1 {
			secs = 1
		}
		timeout = int32(min(secs, 3600))
	}
	type result struct {
		out libvirt.OptString
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// go-libvirt takes no context; libvirt's own timeout bounds this.
		out, err := t.l.QEMUDomainAgentCommand(t.dom, string(request), timeout, 0)
		ch <- result{out, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return mapLibvirtError(r.err, t.l.IsConnected())
		}
		if len(r.out) == 0 {
			return nil, errors.New("libvirt returned no agent reply")
		}
		return []byte(r.out[0]), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("libvirt agent command: %w (%w)", os.ErrDeadlineExceeded, ctx.Err())
	case <-t.l.Disconnected():
		return nil, fmt.Errorf("libvirt agent command: %w: libvirt connection lost", net.ErrClosed)
	}
}

// mapLibvirtError turns a libvirt error into what Client expects: an agent
// error reply, a timeout, or a closed path.
func mapLibvirtError(err error, connected bool) ([]byte, error) {
	if !connected || errors.Is(err, libvirt.ErrInterrupted) {
		return nil, fmt.Errorf("libvirt agent command: %w: libvirt connection lost (%v)", net.ErrClosed, err)
	}
	var le libvirt.Error
	if !errors.As(err, &le) {
		return nil, fmt.Errorf("libvirt agent command: %w", err)
	}
	switch libvirt.ErrorNumber(le.Code) {
	case libvirt.ErrAgentUnresponsive, libvirt.ErrAgentCommandTimeout, libvirt.ErrOperationTimeout, libvirt.ErrAgentUnsynced:
		return nil, fmt.Errorf("libvirt agent command: %w: %s", os.ErrDeadlineExceeded, le.Message)
	case libvirt.ErrOperationInvalid, libvirt.ErrNoDomain:
		// "domain is not running": the guest is gone.
		return nil, fmt.Errorf("libvirt agent command: %w: %s", net.ErrClosed, le.Message)
	}
	class := "GenericError"
	if libvirt.ErrorNumber(le.Code) == libvirt.ErrArgumentUnsupported || strings.Contains(le.Message, "has been disabled") {
		class = "CommandNotFound"
	}
	desc := le.Message
	// "internal error: unable to execute QEMU agent command 'guest-exec': <desc>"
	if _, after, ok := strings.Cut(desc, "agent command '"); ok {
		if _, d, ok := strings.Cut(after, "': "); ok {
			desc = d
		}
	} else {
		// Not an agent reply at all (e.g. bad arguments refused by libvirt).
		return nil, fmt.Errorf("libvirt agent command: %s (code %d)", le.Message, le.Code)
	}
	rep, _ := json.Marshal(map[string]any{"error": map[string]string{"class": class, "desc": desc}})
	return rep, nil
}

var _ Transport = (*LibvirtTransport)(nil)

// Close implements Transport; the libvirt connection stays the caller's.
func (t *LibvirtTransport) Close() error { return nil }
