package guestagent

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
)

func TestLibvirtErrorMapping(t *testing.T) {
	lverr := func(code libvirt.ErrorNumber, msg string) error {
		return libvirt.Error{Code: uint32(code), Message: msg}
	}
	// Agent error replies come back as *Error with the agent's text.
	rep, err := mapLibvirtError(lverr(libvirt.ErrInternalError, "internal error: unable to execute QEMU agent command 'guest-exec-status': Invalid parameter 'pid'"), true)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeReply(rep)
	if err != nil || r.Err == nil {
		t.Fatalf("got %s %v, want an error reply", rep, err)
	}
	r.Err.Command = "guest-exec-status"
	if !errors.Is(r.Err, ErrUnknownPID) || r.Err.Class != "GenericError" {
		t.Fatalf("%v: want ErrUnknownPID, GenericError", r.Err)
	}
	rep, _ = mapLibvirtError(lverr(libvirt.ErrAgentCommandFailed, "guest agent command failed: unable to execute QEMU agent command 'guest-file-flush': failed to flush file: Invalid argument"), true)
	r, _ = decodeReply(rep)
	if r.Err == nil || !errors.Is(r.Err, syscall.EINVAL) {
		t.Fatalf("flush error %s: want EINVAL", rep)
	}
	rep, _ = mapLibvirtError(lverr(libvirt.ErrInternalError, "internal error: unable to execute QEMU agent command 'guest-shutdown': Command guest-shutdown has been disabled"), true)
	if r, _ = decodeReply(rep); r.Err == nil || r.Err.Class != "CommandNotFound" {
		t.Fatalf("disabled command %s: want CommandNotFound", rep)
	}
	// Silence is a timeout, a dead domain or connection a closed path.
	for _, tc := range []struct {
		err  error
		conn bool
		want error
	}{
		{lverr(libvirt.ErrAgentUnresponsive, "Guest agent is not responding: Guest agent not available for now"), true, os.ErrDeadlineExceeded},
		{lverr(libvirt.ErrOperationInvalid, "Requested operation is not valid: domain is not running"), true, net.ErrClosed},
		{libvirt.ErrInterrupted, true, net.ErrClosed},
		{lverr(libvirt.ErrInternalError, "whatever"), false, net.ErrClosed},
	} {
		if _, err := mapLibvirtError(tc.err, tc.conn); !errors.Is(err, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.err, err, tc.want)
		}
	}
}

// fakeTransport answers from a function.
type fakeTransport struct {
	rt     func(req string) (string, error)
	closed bool
}

func (f *fakeTransport) RoundTrip(ctx context.Context, req []byte) ([]byte, error) {
	s, err := f.rt(string(req))
	return []byte(s), err
}
func (f *fakeTransport) Close() error { f.closed = true; return nil }

func TestClientOverTransport(t *testing.T) {
	pings := 0
	f := &fakeTransport{rt: func(req string) (string, error) {
		switch req {
		case `{"execute":"guest-ping"}`:
			pings++
			if pings < 3 {
				return "", errors.New("agent not connected yet: " + os.ErrDeadlineExceeded.Error())
			}
			return `{"return":{}}`, nil
		case `{"execute":"guest-info"}`:
			return `{"return":{"version":"7.2.0","supported_commands":[{"name":"guest-ping","enabled":true}]}}`, nil
		case `{"execute":"guest-shutdown"}`:
			return "", os.ErrDeadlineExceeded
		}
		return `{"error":{"class":"CommandNotFound","desc":"nope"}}`, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialTransport(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if pings != 3 {
		t.Fatalf("%d pings, want 3 (retry until the agent answers)", pings)
	}
	info, err := c.Info(ctx)
	if err != nil || info.Version != "7.2.0" || !info.Supports("guest-ping") {
		t.Fatalf("info %+v %v", info, err)
	}
	var e *Error
	if err := c.Do(ctx, "guest-nope", nil, nil); !errors.As(err, &e) || e.Class != "CommandNotFound" || e.Command != "guest-nope" {
		t.Fatalf("got %v, want a CommandNotFound *Error", err)
	}
	// guest-shutdown never replies: silence is success.
	if err := c.Shutdown(ctx, ""); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !f.closed {
		t.Fatal("Close did not close the transport")
	}
	if err := c.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
