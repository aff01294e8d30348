package agenttest_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent/agenttest"
)

func dial(t *testing.T, a *agenttest.Agent) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("unix", a.Path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second)) // a broken fake fails, never hangs
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

func exchange(t *testing.T, conn net.Conn, r *bufio.Reader, req string) string {
	t.Helper()
	if _, err := io.WriteString(conn, req+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return line
}

func TestDefaultsAndRecording(t *testing.T) {
	a := agenttest.New(t).Start()
	conn, r := dial(t, a)
	for _, c := range []struct{ req, want string }{
		{`{"execute":"guest-sync-delimited","arguments":{"id":42}}`, "\xff{\"return\": 42}\n"},
		{"\xff" + `{"execute":"guest-ping"}`, `{"return":{}}` + "\n"},
		{`{"execute":"guest-nope"}`, `{"error": {"class": "CommandNotFound", "desc": "The command guest-nope has not been found"}}` + "\n"},
		{`not json`, `{"error": {"class": "GenericError", "desc": "JSON parse error"}}` + "\n"},
	} {
		if got := exchange(t, conn, r, c.req); got != c.want {
			t.Errorf("%q: got %q, want %q", c.req, got, c.want)
		}
	}
	if got, want := a.Commands(), []string{"guest-sync-delimited", "guest-ping", "guest-nope"}; !slices.Equal(got, want) {
		t.Errorf("Commands() = %q, want %q", got, want)
	}
	if raw := a.RawRequests(); len(raw) != 3 || raw[1] != `{"execute":"guest-ping"}`+"\n" {
		t.Errorf("RawRequests() = %q (the 0xFF reset byte is stripped)", raw)
	}
}

func TestHandlersOnAcceptAndHangup(t *testing.T) {
	a := agenttest.New(t)
	a.OnAccept(func(c *agenttest.Conn) { c.Send("stale\n") })
	a.Handle("guest-info", func(c *agenttest.Conn, args json.RawMessage) {
		c.Reply(map[string]string{"version": "7.2.0"})
	})
	a.Handle("guest-shutdown", func(c *agenttest.Conn, _ json.RawMessage) { c.Close() })
	a.Handle("guest-exec", func(c *agenttest.Conn, _ json.RawMessage) { c.Fail("GenericError", "nope") })
	a.Start()
	conn, r := dial(t, a)
	if line, _ := r.ReadString('\n'); line != "stale\n" {
		t.Fatalf("OnAccept wrote %q", line)
	}
	if got := exchange(t, conn, r, `{"execute":"guest-info"}`); got != `{"return":{"version":"7.2.0"}}`+"\n" {
		t.Errorf("guest-info: %q", got)
	}
	if got := exchange(t, conn, r, `{"execute":"guest-exec"}`); got != `{"error": {"class": "GenericError", "desc": "nope"}}`+"\n" {
		t.Errorf("guest-exec: %q", got)
	}
	io.WriteString(conn, `{"execute":"guest-shutdown"}`+"\n")
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection open after the handler closed it")
	}
	// The agent serves the next connection.
	conn2, r2 := dial(t, a)
	r2.ReadString('\n') // OnAccept's line
	if got := exchange(t, conn2, r2, `{"execute":"guest-ping"}`); got != `{"return":{}}`+"\n" {
		t.Errorf("second connection: %q", got)
	}
}
