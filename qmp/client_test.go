package qmp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/qmp/qmptest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialFake(t *testing.T, f *qmptest.Server) *Client {
	t.Helper()
	c, err := Dial(ctxT(t), f.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	return c
}

func TestEventsInterleavedWithRepliesNeverBlock(t *testing.T) {
	// QEMU sends RESUME before cont's reply; go-qemu's monitor deadlocks on
	// that when nobody reads events. Here nobody subscribes at all.
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) {
		for i := 0; i < 100; i++ {
			w.Event("RESUME", nil)
		}
		w.Return(cmd, nil)
	})
	c := dialFake(t, f)
	for i := 0; i < 20; i++ {
		if err := c.Cont(ctxT(t)); err != nil {
			t.Fatalf("cont %d: %v", i, err)
		}
	}
	if n := len(c.EventJournal().Snapshot()); n != 2000 {
		t.Fatalf("journal has %d events, want 2000", n)
	}
}

func TestRepliesMatchedByIDOutOfOrder(t *testing.T) {
	// Hold the first command's reply until the second arrives, then answer
	// both in reverse order. (Handlers run one at a time: no lock.)
	var held []qmptest.Command
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) {
		held = append(held, cmd)
		if len(held) == 2 {
			for i := 1; i >= 0; i-- {
				w.Return(held[i], held[i].Arguments)
			}
		}
	})
	c := dialFake(t, f)
	var results [2]chan string
	for i, word := range []string{"first", "second"} {
		results[i] = make(chan string, 1)
		go func() {
			var out map[string]string
			if err := c.Execute(ctxT(t), "echo", map[string]string{"w": word}, &out); err != nil {
				t.Error(err)
			}
			results[i] <- out["w"]
		}()
		time.Sleep(50 * time.Millisecond)
	}
	if first, second := <-results[0], <-results[1]; first != "first" || second != "second" {
		t.Fatalf("replies crossed: %q, %q", first, second)
	}
}

func TestReplyOver64KiB(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) {
		w.Return(cmd, big)
	})
	c := dialFake(t, f)
	out, err := c.HMP(ctxT(t), "info mtree")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(big) {
		t.Fatalf("got %d bytes, want %d", len(out), len(big))
	}
	// The monitor must still work afterwards.
	if _, err := c.HMP(ctxT(t), "info status"); err != nil {
		t.Fatal(err)
	}
}

func TestErrorClassKept(t *testing.T) {
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) {
		w.Error(cmd, "DeviceNotFound", "Device 'nope' not found")
	})
	c := dialFake(t, f)
	err := c.DeviceDel(ctxT(t), "nope")
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "DeviceNotFound" || qe.Command != "device_del" {
		t.Fatalf("got %#v, want a DeviceNotFound *Error for device_del", err)
	}
	if !IsClass(err, "DeviceNotFound") {
		t.Fatal("IsClass does not see the class")
	}
	// Run (the Monitor interface) returns the raw reply and the error.
	raw, err := c.Run([]byte(`{"execute":"device_del","arguments":{"id":"nope"}}`))
	if !IsClass(err, "DeviceNotFound") || !strings.Contains(string(raw), "DeviceNotFound") {
		t.Fatalf("Run: raw=%s err=%v", raw, err)
	}
}

func TestTimeoutThenLateReplyIsDropped(t *testing.T) {
	var stale *qmptest.Command // handlers run one at a time: no lock
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) {
		if cmd.Execute == "slow" {
			stale = &cmd // never answered in time
			return
		}
		if stale != nil { // answer the stale command first, then this one
			w.Return(*stale, "stale")
			stale = nil
		}
		w.Return(cmd, "fresh")
	})
	c := dialFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Execute(ctx, "slow", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "slow") {
		t.Fatalf("want a deadline error naming the command, got %v", err)
	}
	var out string
	if err := c.Execute(ctxT(t), "fast", nil, &out); err != nil || out != "fresh" {
		t.Fatalf("got %q, %v; want the fresh reply", out, err)
	}
}

func TestWaitEventAndSubscribers(t *testing.T) {
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) {
		w.Return(cmd, nil)
		// QEMU emits the backend's event first; it must not match.
		w.Event("DEVICE_DELETED", map[string]any{"path": "/machine/peripheral/disk0/virtio-backend"})
		w.Event("DEVICE_DELETED", map[string]any{"device": "disk0", "path": "/machine/peripheral/disk0"})
	})
	c := dialFake(t, f)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	slow, _ := c.Events(ctx) // never read: must not block anything
	_ = slow
	fast, _ := c.Events(ctx)
	res, err := Graceful(ctxT(t), c, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted.Before(res.Requested.Add(-time.Second)) {
		t.Fatalf("implausible times %+v", res)
	}
	for i := 0; i < 2; i++ {
		select {
		case e := <-fast:
			if e.Event != "DEVICE_DELETED" {
				t.Fatalf("got %s", e.Event)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("subscriber got no event")
		}
	}
}

func TestConnectionLossFailsPendingAndWaiters(t *testing.T) {
	f := qmptest.Start(t, func(*qmptest.Conn, qmptest.Command) {})
	c := dialFake(t, f)
	errc := make(chan error, 2)
	go func() { errc <- c.Execute(ctxT(t), "hang", nil, nil) }()
	go func() { _, err := c.WaitEvent(ctxT(t), 0, IsDeviceDeleted("x")); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	f.Hangup()
	for i := 0; i < 2; i++ {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	}
	if err := c.Stop(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("command after close: want ErrClosed, got %v", err)
	}
}

func TestGreetingRequired(t *testing.T) {
	f := qmptest.StartGreeting(t, "hello, not qmp", nil)
	if _, err := Dial(ctxT(t), f.Path); err == nil || !strings.Contains(err.Error(), "QMP banner") {
		t.Fatalf("want a banner error, got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, f.Path+".missing"); err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
}

func TestFindPCI(t *testing.T) {
	raw := `[{"bus":0,"devices":[
	  {"bus":0,"slot":0,"function":0,"qdev_id":"","class_info":{"class":1536}},
	  {"bus":0,"slot":2,"function":0,"qdev_id":"rp1","pci_bridge":{"bus":{"number":1,"secondary":1,"subordinate":1},
	    "devices":[{"bus":1,"slot":0,"function":0,"qdev_id":"disk0"}]}}]}]`
	f := qmptest.Start(t, func(w *qmptest.Conn, cmd qmptest.Command) { w.ReturnJSON(cmd, raw) })
	c := dialFake(t, f)
	p, err := c.FindPCI(ctxT(t), "disk0")
	port, hasPort := p.Port()
	if err != nil || !hasPort || port.QdevID != "rp1" || port.Address().String() != "00:02.0" || p.Device.Address().String() != "01:00.0" {
		t.Fatalf("got %+v", p)
	}
	if _, err := c.FindPCI(ctxT(t), "nope"); err == nil || !strings.Contains(err.Error(), "disk0") {
		t.Fatalf("want an error listing the devices present, got %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"return": {}, "id": "yank-1"}`,
		`{"error": {"class": "GenericError", "desc": "x"}, "id": "yank-2"}`,
		`{"event": "DEVICE_DELETED", "data": {"device": "d"}, "timestamp": {"seconds": 1, "microseconds": 2}}`,
		`{"QMP": {}}`, `{"error": {}}`, `[]`, `{"event": 1}`, `{"return": 1, "id": 3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		msg, err := decodeMessage(line)
		if err != nil {
			return
		}
		if msg.event == nil {
			// A decoded reply is either success or an error with a class.
			if e := msg.reply.err("x"); e != nil && msg.reply.Error.Class == "" {
				t.Fatalf("error reply without class accepted: %q", line)
			}
		}
	})
}
