package guestagent

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

// fakeAgent is a scripted agent on a UNIX socket. Like QGA it handles one
// request at a time, in order, so a slow handler delays later replies.
type fakeAgent struct {
	t    *testing.T
	path string
	ln   net.Listener

	mu       sync.Mutex
	handlers map[string]fakeHandler
	onAccept func(w *fakeConn) // e.g. write garbage first
	seen     []string          // commands received, syncs included
	raw      []string          // request lines as received
}

// fakeHandler answers one request; returning without writing is silence.
type fakeHandler func(w *fakeConn, args json.RawMessage)

type fakeConn struct {
	net.Conn
	mu sync.Mutex
}

func (w *fakeConn) send(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.Write([]byte(s))
}

func (w *fakeConn) reply(v any) {
	b, _ := json.Marshal(map[string]any{"return": v})
	w.send(string(b) + "\n")
}

func (w *fakeConn) fail(class, desc string) {
	w.send(fmt.Sprintf(`{"error": {"class": %q, "desc": %q}}`+"\n", class, desc))
}

// newFakeAgent listens on a short socket path (sun_path is 108 bytes,
// t.TempDir paths can be longer).
func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "qga")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeAgent{t: t, path: filepath.Join(dir, "s"), handlers: map[string]fakeHandler{}}
	f.handle("guest-sync-delimited", func(w *fakeConn, args json.RawMessage) {
		var a struct{ ID int64 }
		json.Unmarshal(args, &a)
		w.send(fmt.Sprintf("\xff{\"return\": %d}\n", a.ID))
	})
	f.handle("guest-ping", func(w *fakeConn, _ json.RawMessage) { w.reply(struct{}{}) })
	return f
}

func (f *fakeAgent) handle(cmd string, h fakeHandler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[cmd] = h
}

func (f *fakeAgent) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func (f *fakeAgent) rawRequests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.raw...)
}

// start begins listening and serving connections one after another.
func (f *fakeAgent) start() *fakeAgent {
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ln = ln
	f.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.serve(&fakeConn{Conn: conn})
		}
	}()
	return f
}

func (f *fakeAgent) serve(w *fakeConn) {
	defer w.Close()
	f.mu.Lock()
	onAccept := f.onAccept
	f.mu.Unlock()
	if onAccept != nil {
		onAccept(w)
	}
	r := bufio.NewReader(w)
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
			w.fail("GenericError", "JSON parse error")
			continue
		}
		f.mu.Lock()
		f.seen = append(f.seen, req.Execute)
		f.raw = append(f.raw, string(line))
		h := f.handlers[req.Execute]
		f.mu.Unlock()
		if h == nil {
			w.fail("CommandNotFound", "The command "+req.Execute+" has not been found")
			continue
		}
		h(w, req.Arguments)
	}
}
