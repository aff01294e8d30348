// Package qmptest is a fake QEMU monitor for tests of QMP clients: a QMP
// server on a UNIX socket that greets, answers qmp_capabilities, hands
// every later command to a Handler and can push events or hang up at any
// time. It speaks raw JSON lines and imports nothing of yank, so package
// qmp's own tests can use it.
package qmptest

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// DefaultGreeting is the banner QEMU 7.2 sends on connect.
const DefaultGreeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "qmptest"}, "capabilities": ["oob"]}}`

// Command is one command the monitor received.
type Command struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments,omitempty"` // nil when absent
	ID        json.RawMessage `json:"id,omitempty"`        // echoed by Conn.Return and Conn.Error
	Raw       []byte          `json:"-"`                   // the line as received
}

// Handler answers one command (or does not: silence is a QEMU that never
// replies). It runs on the connection's reader, one command at a time, in
// order, as QEMU's monitor does.
type Handler func(c *Conn, cmd Command)

// Conn is the monitor's side of a client connection.
type Conn struct {
	mu   sync.Mutex
	conn net.Conn
}

// SendLine writes line and a newline as they are: garbage, half messages.
func (c *Conn) SendLine(line string) {
	c.mu.Lock()
	c.conn.Write([]byte(line + "\n"))
	c.mu.Unlock()
}

// Send writes v as one JSON line.
func (c *Conn) Send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("qmptest: " + err.Error())
	}
	c.SendLine(string(b))
}

// Return sends cmd's success reply with value v (nil sends {}).
func (c *Conn) Return(cmd Command, v any) {
	if v == nil {
		v = struct{}{}
	}
	c.Send(map[string]any{"return": v, "id": cmd.ID})
}

// ReturnJSON sends cmd's success reply with result, raw JSON as QEMU
// printed it (e.g. a query-pci captured from a real guest).
func (c *Conn) ReturnJSON(cmd Command, result string) {
	c.Return(cmd, json.RawMessage(result))
}

// Error sends cmd's error reply, as QEMU words it: {"class", "desc"}.
func (c *Conn) Error(cmd Command, class, desc string) {
	c.Send(map[string]any{"error": map[string]string{"class": class, "desc": desc}, "id": cmd.ID})
}

// Event sends an asynchronous event stamped with the current time; data
// may be nil.
func (c *Conn) Event(name string, data any) {
	now := time.Now()
	m := map[string]any{"event": name, "timestamp": map[string]int64{"seconds": now.Unix(), "microseconds": int64(now.Nanosecond() / 1000)}}
	if data != nil {
		m["data"] = data
	}
	c.Send(m)
}

// Server is a fake monitor listening on Path. It serves one connection at
// a time, accepting the next when the current one ends.
type Server struct {
	// Path is the socket to dial.
	Path string

	t        testing.TB
	greeting string
	handle   Handler

	mu       sync.Mutex
	conn     *Conn
	commands []Command
	accepted chan struct{} // closed on the first connection
	once     sync.Once
}

// Start listens on a fresh socket, greets each client with
// DefaultGreeting and hands its commands to handle (nil answers every one
// with an empty return). Everything stops when the test ends.
func Start(t testing.TB, handle Handler) *Server {
	return StartGreeting(t, DefaultGreeting, handle)
}

// StartGreeting is Start with another first line, e.g. one that is not a
// QMP banner at all.
func StartGreeting(t testing.TB, greeting string, handle Handler) *Server {
	t.Helper()
	if handle == nil {
		handle = func(c *Conn, cmd Command) { c.Return(cmd, nil) }
	}
	// sun_path holds 108 bytes; t.TempDir paths can be longer.
	dir, err := os.MkdirTemp("", "qmptest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Path: filepath.Join(dir, "qmp.sock"), t: t, greeting: greeting, handle: handle, accepted: make(chan struct{})}
	ln, err := net.Listen("unix", s.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ln.Close()
		s.Hangup()
	})
	go s.acceptLoop(ln)
	return s
}

// acceptLoop serves each connection in turn until ln is closed.
func (s *Server) acceptLoop(ln net.Listener) {
	for nc, err := ln.Accept(); err == nil; nc, err = ln.Accept() {
		s.serve(&Conn{conn: nc})
	}
}

func (s *Server) serve(c *Conn) {
	defer c.conn.Close()
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	s.once.Do(func() { close(s.accepted) })
	c.SendLine(s.greeting)
	r := bufio.NewReader(c.conn)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var cmd Command
		if json.Unmarshal(line, &cmd) != nil {
			c.Send(map[string]any{"error": map[string]string{"class": "GenericError", "desc": "JSON parse error"}})
			continue
		}
		cmd.Raw = line
		s.mu.Lock()
		s.commands = append(s.commands, cmd)
		s.mu.Unlock()
		if cmd.Execute == "qmp_capabilities" {
			c.Return(cmd, nil)
			continue
		}
		s.handle(c, cmd)
	}
}

// Commands returns the commands received so far, qmp_capabilities
// included, in order.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.commands...)
}

// Event pushes an event to the current client, outside any command: the
// way QEMU reports a guest that ejected a device on its own. It waits for
// a client to connect (failing the test after 5 s).
func (s *Server) Event(name string, data any) {
	s.current().Event(name, data)
}

func (s *Server) current() *Conn {
	select {
	case <-s.accepted:
	case <-time.After(5 * time.Second):
		s.t.Error("qmptest: no client connected")
		return &Conn{conn: nopConn{}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Hangup closes the current connection, as a QEMU that exits or crashes
// does; the server then accepts the next one.
func (s *Server) Hangup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.conn.Close()
	}
}

// nopConn swallows writes when there is no client.
type nopConn struct{ net.Conn }

func (nopConn) Write(b []byte) (int, error) { return len(b), nil }
