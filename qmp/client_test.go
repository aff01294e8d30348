package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQEMU is a scripted QMP server on a UNIX socket: it greets, answers
// qmp_capabilities, then hands every later command to handle, which writes
// whatever lines it likes (events, replies, garbage).
type fakeQEMU struct {
	t      *testing.T
	path   string
	handle func(w *bufio.Writer, cmd map[string]any)
	mu     sync.Mutex
	conn   net.Conn
}

func startFake(t *testing.T, handle func(w *bufio.Writer, cmd map[string]any)) *fakeQEMU {
	t.Helper()
	f := &fakeQEMU{t: t, path: filepath.Join(t.TempDir(), "qmp.sock"), handle: handle}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conn = conn
		f.mu.Unlock()
		t.Cleanup(func() { conn.Close() })
		w := bufio.NewWriter(conn)
		w.WriteString(`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}` + "\n")
		w.Flush()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var cmd map[string]any
			if json.Unmarshal(line, &cmd) != nil {
				continue
			}
			if cmd["execute"] == "qmp_capabilities" {
				writeJSON(w, map[string]any{"return": map[string]any{}, "id": cmd["id"]})
			} else {
				f.handle(w, cmd)
			}
			w.Flush()
		}
	}()
	return f
}

func (f *fakeQEMU) hangup() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
	}
}

func writeJSON(w *bufio.Writer, v any) {
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}

func event(name string, data map[string]any) map[string]any {
	return map[string]any{"event": name, "data": data, "timestamp": map[string]any{"seconds": 1, "microseconds": 2}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialFake(t *testing.T, f *fakeQEMU) *Client {
	t.Helper()
	c, err := Dial(ctxT(t), f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	return c
}

func TestEventsInterleavedWithRepliesNeverBlock(t *testing.T) {
	// QEMU sends RESUME before cont's reply; go-qemu's monitor deadlocks on
	// that when nobody reads events. Here nobody subscribes at all.
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {
		for i := 0; i < 100; i++ {
			writeJSON(w, event("RESUME", nil))
		}
		writeJSON(w, map[string]any{"return": map[string]any{}, "id": cmd["id"]})
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
	// both in reverse order.
	var mu sync.Mutex
	var held []map[string]any
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		held = append(held, cmd)
		if len(held) == 2 {
			for i := 1; i >= 0; i-- {
				writeJSON(w, map[string]any{"return": held[i]["arguments"], "id": held[i]["id"]})
			}
		}
	})
	c := dialFake(t, f)
	var wg sync.WaitGroup
	results := make([]string, 2)
	for i, word := range []string{"first", "second"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out map[string]string
			if err := c.Execute(ctxT(t), "echo", map[string]string{"w": word}, &out); err != nil {
				t.Error(err)
			}
			results[i] = out["w"]
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if results[0] != "first" || results[1] != "second" {
		t.Fatalf("replies crossed: %v", results)
	}
}

func TestReplyOver64KiB(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {
		writeJSON(w, map[string]any{"return": big, "id": cmd["id"]})
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
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {
		writeJSON(w, map[string]any{"error": map[string]any{"class": "DeviceNotFound", "desc": "Device 'nope' not found"}, "id": cmd["id"]})
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
	var mu sync.Mutex
	var stale map[string]any
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if cmd["execute"] == "slow" {
			stale = cmd // never answered in time
			return
		}
		if stale != nil { // answer the stale command first, then this one
			writeJSON(w, map[string]any{"return": "stale", "id": stale["id"]})
			stale = nil
		}
		writeJSON(w, map[string]any{"return": "fresh", "id": cmd["id"]})
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
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {
		writeJSON(w, map[string]any{"return": map[string]any{}, "id": cmd["id"]})
		// QEMU emits the backend's event first; it must not match.
		writeJSON(w, event("DEVICE_DELETED", map[string]any{"path": "/machine/peripheral/disk0/virtio-backend"}))
		writeJSON(w, event("DEVICE_DELETED", map[string]any{"device": "disk0", "path": "/machine/peripheral/disk0"}))
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
	f := startFake(t, func(w *bufio.Writer, cmd map[string]any) {})
	c := dialFake(t, f)
	errc := make(chan error, 2)
	go func() { errc <- c.Execute(ctxT(t), "hang", nil, nil) }()
	go func() { _, err := c.WaitEvent(ctxT(t), 0, IsDeviceDeleted("x")); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	f.hangup()
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
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, _ := ln.Accept()
		if conn != nil {
			conn.Write([]byte("hello, not qmp\n"))
			defer conn.Close()
			time.Sleep(time.Second)
		}
	}()
	if _, err := Dial(ctxT(t), path); err == nil || !strings.Contains(err.Error(), "QMP banner") {
		t.Fatalf("want a banner error, got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
}

func TestFindPCI(t *testing.T) {
	raw := `[{"bus":0,"devices":[
	  {"bus":0,"slot":0,"function":0,"qdev_id":"","class_info":{"class":1536}},
	  {"bus":0,"slot":2,"function":0,"qdev_id":"rp1","pci_bridge":{"bus":{"number":1,"secondary":1,"subordinate":1},
	    "devices":[{"bus":1,"slot":0,"function":0,"qdev_id":"disk0"}]}}]}]`
	var buses []PCIBus
	if err := json.Unmarshal([]byte(raw), &buses); err != nil {
		t.Fatal(err)
	}
	p, ok := findPCI(buses, "disk0")
	port, hasPort := p.Port()
	if !ok || !hasPort || port.QdevID != "rp1" || port.Address().String() != "00:02.0" || p.Device.Address().String() != "01:00.0" {
		t.Fatalf("got %+v", p)
	}
	if _, ok := findPCI(buses, "nope"); ok {
		t.Fatal("found a device that is not there")
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
