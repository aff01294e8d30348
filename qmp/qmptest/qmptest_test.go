package qmptest_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/qmp/qmptest"
)

// client is a raw QMP client: one JSON line out, one line in.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, s *qmptest.Server) *client {
	t.Helper()
	conn, err := net.Dial("unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) recv() map[string]any {
	c.t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("%q: %v", line, err)
	}
	return m
}

func TestGreetingCapabilitiesAndHandler(t *testing.T) {
	s := qmptest.Start(t, func(c *qmptest.Conn, cmd qmptest.Command) {
		switch cmd.Execute {
		case "echo":
			c.Event("BEFORE", map[string]any{"n": 1})
			c.Return(cmd, cmd.Arguments)
		default:
			c.Error(cmd, "CommandNotFound", "The command "+cmd.Execute+" has not been found")
		}
	})
	c := dial(t, s)
	if g := c.recv(); g["QMP"] == nil {
		t.Fatalf("greeting %v", g)
	}
	c.send(`{"execute": "qmp_capabilities", "id": 1}`)
	if r := c.recv(); r["id"] != 1.0 || r["return"] == nil {
		t.Fatalf("capabilities reply %v", r)
	}
	c.send(`{"execute": "echo", "arguments": {"w": "hi"}, "id": "a"}`)
	if e := c.recv(); e["event"] != "BEFORE" || e["timestamp"] == nil {
		t.Fatalf("event %v", e)
	}
	if r := c.recv(); r["id"] != "a" || r["return"].(map[string]any)["w"] != "hi" {
		t.Fatalf("echo reply %v", r)
	}
	c.send(`{"execute": "nope", "id": 2}`)
	if r := c.recv(); r["id"] != 2.0 || r["error"].(map[string]any)["class"] != "CommandNotFound" {
		t.Fatalf("error reply %v", r)
	}
	c.send(`not json`)
	if r := c.recv(); r["error"] == nil {
		t.Fatalf("garbage reply %v", r)
	}
	var got []string
	for _, cmd := range s.Commands() {
		got = append(got, cmd.Execute)
	}
	if strings.Join(got, ",") != "qmp_capabilities,echo,nope" {
		t.Fatalf("Commands() = %v", got)
	}
}

func TestServerEventAndHangup(t *testing.T) {
	s := qmptest.Start(t, nil)
	c := dial(t, s)
	c.recv() // greeting
	c.send(`{"execute": "stop", "id": 7}`)
	if r := c.recv(); r["id"] != 7.0 || r["return"] == nil {
		t.Fatalf("a nil Handler returns {}: %v", r)
	}
	s.Event("DEVICE_DELETED", map[string]any{"device": "d0"})
	if e := c.recv(); e["event"] != "DEVICE_DELETED" || e["data"].(map[string]any)["device"] != "d0" {
		t.Fatalf("event %v", e)
	}
	s.Hangup()
	if _, err := c.r.ReadBytes('\n'); err == nil {
		t.Fatal("connection still open after Hangup")
	}
	// The server accepts the next client, as a restarted QEMU would.
	if g := dial(t, s).recv(); g["QMP"] == nil {
		t.Fatalf("second greeting %v", g)
	}
}

func TestStartGreeting(t *testing.T) {
	s := qmptest.StartGreeting(t, "hello, not qmp", nil)
	c := dial(t, s)
	line, err := c.r.ReadString('\n')
	if err != nil || line != "hello, not qmp\n" {
		t.Fatalf("greeting %q, %v", line, err)
	}
}
