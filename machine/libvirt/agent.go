package libvirt

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

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/guestagent"
)

// AgentTransport (a guestagent.Transport) reaches the guest agent through libvirt's agent
// passthrough (virDomainQemuAgentCommand, `virsh qemu-agent-command`).
// libvirt owns the agent socket and syncs before each command; it turns
// agent error replies into libvirt errors, which this transport turns back
// into agent error replies so *guestagent.Error, guestagent.ErrUnknownPID and errno matching
// work as on the socket. libvirt drops the error class: it comes back as
// GenericError, or CommandNotFound for the commands libvirt reports as
// unsupported.
type AgentTransport struct {
	l   *golibvirt.Libvirt
	dom golibvirt.Domain
}

// NewAgentTransport returns a transport for dom's agent on the connection
// l. The connection stays the caller's.
func NewAgentTransport(l *golibvirt.Libvirt, dom golibvirt.Domain) *AgentTransport {
	return &AgentTransport{l: l, dom: dom}
}

// DialAgent is guestagent.DialTransport over an AgentTransport.
func DialAgent(ctx context.Context, l *golibvirt.Libvirt, dom golibvirt.Domain, opts ...guestagent.Option) (*guestagent.Client, error) {
	return guestagent.DialTransport(ctx, NewAgentTransport(l, dom), opts...)
}

// RoundTrip implements guestagent.Transport.
func (t *AgentTransport) RoundTrip(ctx context.Context, request []byte) ([]byte, error) {
	timeout := int32(-1) // libvirt's default (5 s)
	if dl, ok := ctx.Deadline(); ok {
		secs := math.Ceil(time.Until(dl).Seconds())
		if secs < 1 {
			secs = 1
		}
		timeout = int32(min(secs, 3600))
	}
	refusedRunning := 0
	for {
		out, lverr, err := t.command(ctx, request, timeout)
		if lverr == nil {
			return out, err
		}
		if !isNotRunning(lverr) {
			return mapLibvirtError(lverr, t.l.IsConnected())
		}
		// libvirt refuses agent commands while the domain is paused
		// ("domain is not running"), and an anchored cut pauses it:
		// the gdbstub's stop on connect, a breakpoint hit, the cut.
		// The command was refused before it reached the agent, so it
		// is sent again once the domain runs, which is what the agent's
		// own socket does (it answers when the guest runs again).
		paused, werr := t.waitRunning(ctx)
		if werr != nil {
			if ctx.Err() != nil {
				// Paused to the deadline: silence, as on the socket.
				return nil, fmt.Errorf("libvirt agent command: %w: domain paused (%v)", os.ErrDeadlineExceeded, lverr)
			}
			return mapLibvirtError(lverr, t.l.IsConnected())
		}
		if !paused {
			refusedRunning++
		}
		if refusedRunning >= maxRefusedRunning {
			// Refused while running, again and again: not a pause
			// that just ended, so the refusal is the answer.
			return mapLibvirtError(lverr, t.l.IsConnected())
		}
	}
}

// maxRefusedRunning bounds the resends of a command libvirt refused
// although the domain ran when asked: libvirt may have seen the pause
// that was already over by then, or refuse it for another reason.
const maxRefusedRunning = 3

// command sends one agent command. An error from libvirt comes back as
// lverr, unmapped; err is the transport's own (a deadline, a lost
// connection, an empty reply).
func (t *AgentTransport) command(ctx context.Context, request []byte, timeout int32) (out []byte, lverr, err error) {
	type result struct {
		out golibvirt.OptString
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
			return nil, r.err, nil
		}
		if len(r.out) == 0 {
			return nil, nil, errors.New("libvirt returned no agent reply")
		}
		return []byte(r.out[0]), nil, nil
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("libvirt agent command: %w (%w)", os.ErrDeadlineExceeded, ctx.Err())
	case <-t.l.Disconnected():
		return nil, nil, fmt.Errorf("libvirt agent command: %w: libvirt connection lost", net.ErrClosed)
	}
}

// pausedPoll is how often a paused domain's state is read: a cut's
// pause lasts about 20 ms.
const pausedPoll = 2 * time.Millisecond

// waitRunning waits while the domain is paused, and says whether it
// was. It returns an error if the domain is in any other state (shut
// off, crashed: the guest is gone) or ctx ends first.
func (t *AgentTransport) waitRunning(ctx context.Context) (paused bool, err error) {
	for {
		state, reason, err := t.l.DomainGetState(t.dom, 0)
		if err != nil {
			return paused, err
		}
		switch golibvirt.DomainState(state) {
		case golibvirt.DomainRunning:
			return paused, nil
		case golibvirt.DomainPaused:
			switch golibvirt.DomainPausedReason(reason) {
			case golibvirt.DomainPausedCrashed, golibvirt.DomainPausedShuttingDown:
				return paused, fmt.Errorf("domain paused for good (reason %d)", reason)
			}
			paused = true
		default:
			return paused, fmt.Errorf("domain state %d", state)
		}
		select {
		case <-ctx.Done():
			return paused, ctx.Err()
		case <-time.After(pausedPoll):
		}
	}
}

// isNotRunning reports libvirt's refusal of a command to a domain that
// is not running (paused or gone; waitRunning tells which).
func isNotRunning(err error) bool {
	var le golibvirt.Error
	return errors.As(err, &le) && golibvirt.ErrorNumber(le.Code) == golibvirt.ErrOperationInvalid
}

// mapLibvirtError turns a libvirt error into what guestagent.Client expects: an agent
// error reply, a timeout, or a closed path.
func mapLibvirtError(err error, connected bool) ([]byte, error) {
	if !connected || errors.Is(err, golibvirt.ErrInterrupted) {
		return nil, fmt.Errorf("libvirt agent command: %w: libvirt connection lost (%v)", net.ErrClosed, err)
	}
	var le golibvirt.Error
	if !errors.As(err, &le) {
		return nil, fmt.Errorf("libvirt agent command: %w", err)
	}
	switch golibvirt.ErrorNumber(le.Code) {
	case golibvirt.ErrAgentUnresponsive, golibvirt.ErrAgentCommandTimeout, golibvirt.ErrOperationTimeout, golibvirt.ErrAgentUnsynced:
		return nil, fmt.Errorf("libvirt agent command: %w: %s", os.ErrDeadlineExceeded, le.Message)
	case golibvirt.ErrOperationInvalid, golibvirt.ErrNoDomain:
		// "domain is not running" and not paused: the guest is gone.
		return nil, fmt.Errorf("libvirt agent command: %w: %s", net.ErrClosed, le.Message)
	}
	class := "GenericError"
	if golibvirt.ErrorNumber(le.Code) == golibvirt.ErrArgumentUnsupported || strings.Contains(le.Message, "has been disabled") {
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

var _ guestagent.Transport = (*AgentTransport)(nil)

// Close implements guestagent.Transport; the libvirt connection stays the caller's.
func (t *AgentTransport) Close() error { return nil }
