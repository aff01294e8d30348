package libvirt

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/guestagent"
)

// replayTransport answers guest-ping, and every other request with what
// mapLibvirtError makes of err: what a guestagent.Client sees through an
// AgentTransport when libvirt fails the command that way.
type replayTransport struct{ err error }

func (r *replayTransport) RoundTrip(ctx context.Context, req []byte) ([]byte, error) {
	if string(req) == `{"execute":"guest-ping"}` {
		return []byte(`{"return":{}}`), nil
	}
	return mapLibvirtError(r.err, true)
}
func (r *replayTransport) Close() error { return nil }

func TestLibvirtErrorMapping(t *testing.T) {
	lverr := func(code golibvirt.ErrorNumber, msg string) error {
		return golibvirt.Error{Code: uint32(code), Message: msg}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Agent error replies come back as *guestagent.Error with the agent's
	// text, through a real client.
	do := func(err error, cmd string) *guestagent.Error {
		t.Helper()
		c, derr := guestagent.DialTransport(ctx, &replayTransport{err})
		if derr != nil {
			t.Fatal(derr)
		}
		defer c.Close()
		var e *guestagent.Error
		if got := c.Do(ctx, cmd, nil, nil); !errors.As(got, &e) {
			t.Fatalf("%v: got %v, want a *guestagent.Error", err, got)
		}
		return e
	}
	e := do(lverr(golibvirt.ErrInternalError, "internal error: unable to execute QEMU agent command 'guest-exec-status': Invalid parameter 'pid'"), "guest-exec-status")
	if !errors.Is(e, guestagent.ErrUnknownPID) || e.Class != "GenericError" {
		t.Fatalf("%v: want ErrUnknownPID, GenericError", e)
	}
	e = do(lverr(golibvirt.ErrAgentCommandFailed, "guest agent command failed: unable to execute QEMU agent command 'guest-file-flush': failed to flush file: Invalid argument"), "guest-file-flush")
	if !errors.Is(e, syscall.EINVAL) {
		t.Fatalf("flush error %v: want EINVAL", e)
	}
	e = do(lverr(golibvirt.ErrInternalError, "internal error: unable to execute QEMU agent command 'guest-shutdown': Command guest-shutdown has been disabled"), "guest-info")
	if e.Class != "CommandNotFound" {
		t.Fatalf("disabled command %v: want CommandNotFound", e)
	}
	// Silence is a timeout, a dead domain or connection a closed path.
	for _, tc := range []struct {
		err  error
		conn bool
		want error
	}{
		{lverr(golibvirt.ErrAgentUnresponsive, "Guest agent is not responding: Guest agent not available for now"), true, os.ErrDeadlineExceeded},
		{lverr(golibvirt.ErrOperationInvalid, "Requested operation is not valid: domain is not running"), true, net.ErrClosed},
		{golibvirt.ErrInterrupted, true, net.ErrClosed},
		{lverr(golibvirt.ErrInternalError, "whatever"), false, net.ErrClosed},
	} {
		if _, err := mapLibvirtError(tc.err, tc.conn); !errors.Is(err, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.err, err, tc.want)
		}
	}
}
