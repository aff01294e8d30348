package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTransport plays QEMU behind a Transport: replies from a function,
// events pushed by the test.
type fakeTransport struct {
	mu     sync.Mutex
	emit   func(time.Time, Event)
	ended  func(error)
	reply  func(cmd map[string]any) string
	closed bool
}

func (f *fakeTransport) Command(ctx context.Context, cmd []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(cmd, &m); err != nil {
		return nil, err
	}
	if _, ok := m["id"]; ok {
		return nil, errors.New("transport got an id")
	}
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return nil, errors.New("closed")
	}
	return []byte(f.reply(m)), nil
}

func (f *fakeTransport) Start(emit func(time.Time, Event), ended func(error)) error {
	f.emit, f.ended = emit, ended
	return nil
}

func (f *fakeTransport) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.ended(nil)
	return nil
}

func TestClientOverTransport(t *testing.T) {
	f := &fakeTransport{reply: func(m map[string]any) string {
		switch m["execute"] {
		case "query-version":
			return `{"return":{"qemu":{"major":7,"minor":2,"micro":22},"package":"Debian"}}`
		case "device_del":
			return `{"id":"libvirt-7","error":{"class":"DeviceNotFound","desc":"Device 'x' not found"}}`
		case "human-monitor-command":
			return `{"return":"portl[0x0cf8] = 0x800100dc\r\n","id":"libvirt-8"}`
		}
		return `{"return":{}}`
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := NewWithTransport(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Greeting().Version.QEMU; v.Major != 7 || v.Minor != 2 {
		t.Fatalf("version %+v", v)
	}
	if err := c.DeviceDel(ctx, "x"); !IsClass(err, "DeviceNotFound") {
		t.Fatalf("got %v, want DeviceNotFound", err)
	}
	out, err := c.HMP(ctx, "i /w 0xcf8")
	if err != nil || !portReply.MatchString(out) {
		t.Fatalf("hmp: %q %v", out, err)
	}
	mark := c.EventJournal().Mark()
	go f.emit(time.Now(), Event{Event: "DEVICE_DELETED", Data: map[string]any{"device": "disk0"}})
	if _, err := c.WaitEvent(ctx, mark, IsDeviceDeleted("disk0")); err != nil {
		t.Fatal(err)
	}
	// The transport ending wakes waiters and fails later commands.
	f.ended(errors.New("libvirt connection lost"))
	<-c.Done()
	if _, err := c.WaitEvent(ctx, mark+1, IsDeviceDeleted("disk1")); err == nil || !strings.Contains(err.Error(), "libvirt connection lost") {
		t.Fatalf("wait after end: %v", err)
	}
	if err := c.Stop(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("command after end: %v, want ErrClosed", err)
	}
	c.Disconnect()
}
