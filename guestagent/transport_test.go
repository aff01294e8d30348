package guestagent

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

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
