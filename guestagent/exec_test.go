package guestagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent/agenttest"
)

func TestExecStatusDecoding(t *testing.T) {
	f := agenttest.New(t)
	execArgs := handleExec(f, 77)
	var polls atomic.Int32
	f.Handle("guest-exec-status", func(w *agenttest.Conn, _ json.RawMessage) {
		switch polls.Add(1) {
		case 1, 2:
			w.Send(`{"return": {"exited": false}}` + "\n")
		case 3:
			// "aGkK" = "hi\n", "b29wcwo=" = "oops\n"
			w.Send(`{"return": {"exitcode": 3, "out-data": "aGkK", "err-data": "b29wcwo=", "out-truncated": false, "err-truncated": true, "exited": true}}` + "\n")
		default: // QGA forgets a pid once it reported it exited
			w.Fail("GenericError", "Invalid parameter 'pid'")
		}
	})
	f.Start()
	c := dialFake(t, f)
	ctx := context.Background()

	st, err := c.Run(ctx, Cmd{Path: "/bin/sh", Args: []string{"-c", "x"}, Env: []string{"A=1"}, Input: []byte("in")})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exited || st.ExitCode != 3 || st.Signal != 0 || string(st.Stdout) != "hi\n" ||
		string(st.Stderr) != "oops\n" || st.StdoutTruncated || !st.StderrTruncated {
		t.Fatalf("status %+v", st)
	}
	var wire map[string]any
	json.Unmarshal(*execArgs, &wire)
	if wire["path"] != "/bin/sh" || wire["input-data"] != "aW4=" || wire["capture-output"] != true ||
		len(wire["arg"].([]any)) != 2 || wire["env"].([]any)[0] != "A=1" {
		t.Fatalf("exec arguments %s", *execArgs)
	}
	if err := st.Err("x"); err == nil || !strings.Contains(err.Error(), "exit code 3: oops") {
		t.Fatalf("Err: %v", err)
	}
	if _, err := c.ExecStatus(ctx, 77); !errors.Is(err, ErrUnknownPID) {
		t.Fatalf("want ErrUnknownPID, got %v", err)
	}
}

func TestExecSignalledAndNoCapture(t *testing.T) {
	f := agenttest.New(t)
	execArgs := handleExec(f, 5)
	f.Handle("guest-exec-status", func(w *agenttest.Conn, _ json.RawMessage) {
		w.Send(`{"return": {"signal": 9, "exited": true}}` + "\n")
	})
	f.Start()
	c := dialFake(t, f)
	pid, err := c.Exec(context.Background(), Background("sleep 100", "/tmp/log"))
	if err != nil || pid != 5 {
		t.Fatal(pid, err)
	}
	if s := string(*execArgs); strings.Contains(s, "capture-output") || strings.Contains(s, "input-data") ||
		!strings.Contains(s, `exec \u003e'/tmp/log' 2\u003e\u00261 \u003c/dev/null\nsleep 100`) {
		t.Fatalf("exec arguments %s", s)
	}
	st, err := c.Wait(context.Background(), pid, 0)
	if err != nil || !st.Exited || st.Signal != 9 || st.Success() {
		t.Fatalf("%+v %v", st, err)
	}
	if err := st.Err("sleep"); err == nil || !strings.Contains(err.Error(), "signal 9") {
		t.Fatalf("Err: %v", err)
	}
}

func TestLargeExecOutput(t *testing.T) {
	out := randomBytes(1 << 20)
	f := agenttest.New(t)
	handleExec(f, 1)
	f.Handle("guest-exec-status", func(w *agenttest.Conn, _ json.RawMessage) {
		w.Reply(map[string]any{"exited": true, "exitcode": 0, "out-data": out})
	})
	f.Start()
	c := dialFake(t, f)
	st, err := c.RunShell(context.Background(), "cat big")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.Stdout, out) || !st.Success() {
		t.Fatalf("got %d bytes, success=%v", len(st.Stdout), st.Success())
	}
}

func TestSignalRunsKill(t *testing.T) {
	f := agenttest.New(t)
	var script string
	f.Handle("guest-exec", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ Arg []string }
		json.Unmarshal(args, &a)
		script = a.Arg[1]
		w.Reply(map[string]int{"pid": 9})
	})
	f.Handle("guest-exec-status", func(w *agenttest.Conn, _ json.RawMessage) {
		// "c2g6IGtpbGw6IG5vIHN1Y2ggcHJvY2Vzcwo=" = "sh: kill: no such process\n"
		w.Send(`{"return": {"exitcode": 1, "err-data": "c2g6IGtpbGw6IG5vIHN1Y2ggcHJvY2Vzcwo=", "exited": true}}` + "\n")
	})
	f.Start()
	c := dialFake(t, f)
	err := c.Signal(context.Background(), 1234, syscall.SIGTERM)
	if script != "kill -15 1234" {
		t.Fatalf("script %q", script)
	}
	if err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Fatalf("Signal: %v", err)
	}
}

// handleExec answers guest-exec with pid and keeps the last request's
// arguments in *args.
func handleExec(f *agenttest.Agent, pid int) (args *json.RawMessage) {
	args = new(json.RawMessage)
	f.Handle("guest-exec", func(w *agenttest.Conn, a json.RawMessage) {
		*args = a
		w.Reply(map[string]int{"pid": pid})
	})
	return args
}

// A command the agent keeps reporting as running past the deadline is
// ErrNotExited (the agent is alive, the guest slow), and the deadline's.
// The deadline passes after the agent's third "running" answer, not at a
// clock time: with a 100 ms timeout a loaded machine (CI's failure) could
// pass it between polls or before the first answer.
func TestWaitPastDeadlineIsNotExited(t *testing.T) {
	f := agenttest.New(t)
	handleExec(f, 7)
	ctx := newTestDeadline(time.Minute)
	var answers atomic.Int32
	f.Handle("guest-exec-status", func(w *agenttest.Conn, _ json.RawMessage) {
		w.Send(`{"return": {"exited": false}}` + "\n")
		if answers.Add(1) == 3 {
			ctx.pass()
		}
	})
	f.Start()
	c := dialFake(t, f)
	_, err := c.Wait(ctx, 7, 0)
	if !errors.Is(err, ErrNotExited) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrAgentSilent) {
		t.Fatalf("want ErrNotExited and DeadlineExceeded (not ErrAgentSilent), got %v", err)
	}
}

// testDeadline is a context whose deadline passes when the test says so.
type testDeadline struct {
	context.Context
	at   time.Time
	done chan struct{}
	once sync.Once
}

func newTestDeadline(far time.Duration) *testDeadline {
	return &testDeadline{Context: context.Background(), at: time.Now().Add(far), done: make(chan struct{})}
}

func (d *testDeadline) pass()                       { d.once.Do(func() { close(d.done) }) }
func (d *testDeadline) Deadline() (time.Time, bool) { return d.at, true }
func (d *testDeadline) Done() <-chan struct{}       { return d.done }
func (d *testDeadline) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
