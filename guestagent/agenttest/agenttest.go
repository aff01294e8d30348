// Package agenttest is a fake qemu-guest-agent for tests of QGA clients: a
// scripted agent on a UNIX socket that, like QGA, handles one request at a
// time, in order (a slow handler delays later replies), answers
// guest-sync-delimited and guest-ping by default, and records what it was
// sent. It speaks raw JSON lines and imports nothing of yank, so package
// guestagent's own tests can use it.
package agenttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Handler answers one request; returning without writing is silence, the
// way a wedged or not yet started agent behaves.
type Handler func(c *Conn, args json.RawMessage)

// Conn is the agent's side of a client connection. Close it to hang up.
type Conn struct {
	net.Conn
	mu sync.Mutex
}

// Send writes s as it is: replies, garbage, half lines, 0xFF delimiters.
func (c *Conn) Send(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Write([]byte(s))
}

// Reply sends a success reply, {"return": v}.
func (c *Conn) Reply(v any) {
	b, err := json.Marshal(map[string]any{"return": v})
	if err != nil {
		panic("agenttest: " + err.Error())
	}
	c.Send(string(b) + "\n")
}

// Fail sends an error reply, as QGA words it: {"class", "desc"}.
func (c *Conn) Fail(class, desc string) {
	c.Send(fmt.Sprintf(`{"error": {"class": %q, "desc": %q}}`+"\n", class, desc))
}

// SyncDelimited is the default guest-sync-delimited handler: the 0xFF
// delimiter, then the request's id. Wrap it to make syncs go silent.
func SyncDelimited(c *Conn, args json.RawMessage) {
	var a struct{ ID int64 }
	json.Unmarshal(args, &a)
	c.Send(fmt.Sprintf("\xff{\"return\": %d}\n", a.ID))
}

// Ping is the default guest-ping handler: an empty return.
func Ping(c *Conn, _ json.RawMessage) { c.Reply(struct{}{}) }

// Agent is a fake agent that will listen on Path once started.
type Agent struct {
	// Path is the socket to dial.
	Path string

	t testing.TB

	mu       sync.Mutex
	handlers map[string]Handler
	onAccept func(c *Conn)
	seen     []string // commands received, syncs included
	raw      []string // request lines as received
}

// New returns an agent with the default handlers that is not listening
// yet: set it up, then Start it (a client may dial before, as it does a
// QEMU whose socket is not there yet). The socket path is short, as
// sun_path holds 108 bytes and t.TempDir paths can be longer.
func New(t testing.TB) *Agent {
	t.Helper()
	dir, err := os.MkdirTemp("", "qga")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &Agent{t: t, Path: filepath.Join(dir, "s"), handlers: map[string]Handler{}}
	a.Handle("guest-sync-delimited", SyncDelimited)
	a.Handle("guest-ping", Ping)
	return a
}

// Handle sets cmd's handler; an unhandled command gets CommandNotFound.
func (a *Agent) Handle(cmd string, h Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.handlers[cmd] = h
}

// OnAccept runs fn first on every new connection, e.g. to send what an
// earlier session left in the channel.
func (a *Agent) OnAccept(fn func(c *Conn)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onAccept = fn
}

// Commands returns the commands received so far, syncs included, in order.
func (a *Agent) Commands() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// RawRequests returns the request lines as received (without the 0xFF
// lexer reset byte).
func (a *Agent) RawRequests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.raw...)
}

// Start listens on Path and serves connections one after another until
// the test ends. It returns a.
func (a *Agent) Start() *Agent {
	ln, err := net.Listen("unix", a.Path)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			a.serve(&Conn{Conn: conn})
		}
	}()
	return a
}

func (a *Agent) serve(c *Conn) {
	defer c.Close()
	a.mu.Lock()
	onAccept := a.onAccept
	a.mu.Unlock()
	if onAccept != nil {
		onAccept(c)
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		line = bytes.TrimLeft(line, "\xff") // the lexer reset byte
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			c.Fail("GenericError", "JSON parse error")
			continue
		}
		a.mu.Lock()
		a.seen = append(a.seen, req.Execute)
		a.raw = append(a.raw, string(line))
		h := a.handlers[req.Execute]
		a.mu.Unlock()
		if h == nil {
			c.Fail("CommandNotFound", "The command "+req.Execute+" has not been found")
			continue
		}
		h(c, req.Arguments)
	}
}
