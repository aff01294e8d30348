package guestagent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent/agenttest"
)

func dialFake(t *testing.T, f *agenttest.Agent, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, f.Path, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSyncSkipsGarbageAndStaleReplies(t *testing.T) {
	f := agenttest.New(t)
	// Left over from an earlier session: garbage, replies, a stale sync.
	f.OnAccept(func(w *agenttest.Conn) {
		w.Send("garbage\x00\xfe{\"return\": {}}\n{\"return\": 42}\n\xff{\"return\": 999}\nnot json\n")
	})
	f.Handle("guest-sync-delimited", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ ID int64 }
		json.Unmarshal(args, &a)
		// What QGA really sends first: the lexer's complaint about 0xFF.
		w.Send(`{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}` + "\n")
		w.Send("\xff{\"return\": 12345}\n\xff{\"return\": 777}\n{\"return\": {}}\njunk\xff")
		w.Send(`{"return": ` + strings.TrimSpace(string(mustJSON(a.ID))) + "}\n")
	})
	var n atomic.Int32
	f.Handle("guest-get-time", func(w *agenttest.Conn, _ json.RawMessage) { w.Reply(1000 + n.Add(1)) })
	f.Start()
	c := dialFake(t, f)

	var got int
	if err := c.Do(context.Background(), "guest-get-time", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got != 1001 {
		t.Fatalf("got %d, want 1001 (a stale reply was taken for ours)", got)
	}
}

func TestArgumentsOmittedNotNull(t *testing.T) {
	f := agenttest.New(t).Start()
	c := dialFake(t, f)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw := f.RawRequests()
	last := raw[len(raw)-1]
	if strings.Contains(last, "arguments") {
		t.Fatalf("ping sent arguments: %s", last)
	}
	if !strings.HasPrefix(raw[0], `{"execute":"guest-sync-delimited","arguments":{"id":`) {
		t.Fatalf("first request is not a sync: %q", raw[0])
	}
}

func TestResyncAfterTimeoutDropsLateReply(t *testing.T) {
	f := agenttest.New(t)
	var calls atomic.Int32
	f.Handle("guest-get-time", func(w *agenttest.Conn, _ json.RawMessage) {
		if calls.Add(1) == 1 {
			time.Sleep(time.Second) // the agent is busy, not dead
			w.Reply(111)            // late: must not answer call 2
			return
		}
		w.Reply(222)
	})
	f.Start()
	c := dialFake(t, f)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Do(ctx, "guest-get-time", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	if !strings.Contains(err.Error(), "guest-get-time") || !strings.Contains(err.Error(), "no reply after") {
		t.Fatalf("error does not say what timed out and when: %v", err)
	}
	// Well before the late reply: the timeout did not wait for it (a
	// loose bound, so a loaded host cannot fail it).
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("timeout took %v", d)
	}

	var got int
	if err := c.Do(context.Background(), "guest-get-time", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got != 222 {
		t.Fatalf("got %d, want 222: the late reply was taken for the next one", got)
	}
	want := []string{"guest-sync-delimited", "guest-get-time", "guest-sync-delimited", "guest-get-time"}
	if got := f.Commands(); !slices.Equal(got, want) {
		t.Fatalf("commands %v, want %v", got, want)
	}
}

func TestDefaultTimeoutApplies(t *testing.T) {
	f := agenttest.New(t)
	f.Handle("guest-get-time", func(*agenttest.Conn, json.RawMessage) {}) // never answers
	f.Start()
	c := dialFake(t, f, WithTimeout(150*time.Millisecond))
	start := time.Now()
	err := c.Do(context.Background(), "guest-get-time", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > time.Second {
		t.Fatalf("default timeout took %v", d)
	}
}

func TestErrorClassPreserved(t *testing.T) {
	f := agenttest.New(t)
	f.Handle("guest-file-open", func(w *agenttest.Conn, _ json.RawMessage) {
		w.Fail("GenericError", "failed to open file '/nope' (mode: 'r'): No such file or directory")
	})
	f.Start()
	c := dialFake(t, f)

	err := c.Do(context.Background(), "guest-frobnicate", nil, nil)
	var qerr *Error
	if !errors.As(err, &qerr) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	if qerr.Class != "CommandNotFound" || qerr.Command != "guest-frobnicate" {
		t.Fatalf("got %+v", qerr)
	}

	_, err = c.ReadFile(context.Background(), "/nope")
	if !errors.As(err, &qerr) || qerr.Class != "GenericError" || qerr.Command != "guest-file-open" {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("errno not exposed: %v", err)
	}
	// An agent error does not desync: no resync before the next call.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(f.Commands(), " "), "guest-sync-delimited"); n != 1 {
		t.Fatalf("%d syncs, want 1", n)
	}
}

func TestUndecodableReplyResyncs(t *testing.T) {
	f := agenttest.New(t)
	var calls atomic.Int32
	f.Handle("guest-get-time", func(w *agenttest.Conn, _ json.RawMessage) {
		if calls.Add(1) == 1 {
			w.Send("}{ not json\n")
			return
		}
		w.Reply(5)
	})
	f.Start()
	c := dialFake(t, f)
	err := c.Do(context.Background(), "guest-get-time", nil, nil)
	var qerr *Error
	if err == nil || errors.As(err, &qerr) {
		t.Fatalf("want a decode error, got %v", err)
	}
	var got int
	if err := c.Do(context.Background(), "guest-get-time", nil, &got); err != nil || got != 5 {
		t.Fatalf("got %d, %v", got, err)
	}
	if f.Commands()[2] != "guest-sync-delimited" {
		t.Fatalf("no resync after decode error: %v", f.Commands())
	}
}

func TestSilentAgentDial(t *testing.T) {
	f := agenttest.New(t)
	f.Handle("guest-sync-delimited", func(*agenttest.Conn, json.RawMessage) {}) // agent not up
	f.Start()
	// 10 attempts' time for the 3 retries asked for, and a bound on the
	// overrun that only a stuck Dial reaches.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, f.Path, WithSyncAttemptTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrAgentSilent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrAgentSilent and DeadlineExceeded, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Dial overran its deadline: %v", d)
	}
	if n := len(f.Commands()); n < 3 {
		t.Fatalf("sync sent %d times, want retries", n)
	}
}

func TestAgentStartsLate(t *testing.T) {
	// QEMU accepts the connection at once; the agent answers later, to
	// every sync queued meanwhile.
	f := agenttest.New(t)
	up := time.Now().Add(300 * time.Millisecond)
	var queued []int64
	f.Handle("guest-sync-delimited", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ ID int64 }
		json.Unmarshal(args, &a)
		queued = append(queued, a.ID)
		if time.Now().Before(up) {
			return
		}
		for _, id := range queued {
			w.Send("\xff{\"return\": " + string(mustJSON(id)) + "}\n")
		}
		queued = nil
	})
	f.Start()
	c := dialFake(t, f, WithSyncAttemptTimeout(50*time.Millisecond))
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDialWaitsForSocket(t *testing.T) {
	f := agenttest.New(t)
	go func() {
		time.Sleep(200 * time.Millisecond)
		f.Start()
	}()
	c := dialFake(t, f)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSilentSyncAfterTimeout(t *testing.T) {
	f := agenttest.New(t)
	var wedged atomic.Bool
	sync := agenttest.SyncDelimited
	f.Handle("guest-sync-delimited", func(w *agenttest.Conn, args json.RawMessage) {
		if !wedged.Load() {
			sync(w, args)
		}
	})
	// The call's deadline passes once the agent has the command (not at
	// a clock time that could come before the command is written).
	ctx := newTestDeadline(time.Minute)
	f.Handle("guest-get-time", func(*agenttest.Conn, json.RawMessage) { wedged.Store(true); ctx.pass() })
	f.Start()
	c := dialFake(t, f)
	if err := c.Do(ctx, "guest-get-time", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	err := c.Ping(ctx2)
	if !errors.Is(err, ErrAgentSilent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want ErrAgentSilent, got %v", err)
	}
	if !strings.Contains(err.Error(), "guest-ping") {
		t.Fatalf("error does not name the command: %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	f := agenttest.New(t)
	var calls atomic.Int32
	f.Handle("guest-get-time", func(w *agenttest.Conn, _ json.RawMessage) {
		if calls.Add(1) > 1 {
			w.Reply(2)
		}
	})
	f.Start()
	c := dialFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := c.Do(ctx, "guest-get-time", nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want Canceled, got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancel took %v", d)
	}
	var got int
	if err := c.Do(context.Background(), "guest-get-time", nil, &got); err != nil || got != 2 {
		t.Fatalf("after cancel: %d, %v", got, err)
	}
}

func TestReconnectAfterEOF(t *testing.T) {
	f := agenttest.New(t)
	var calls atomic.Int32
	f.Handle("guest-get-time", func(w *agenttest.Conn, _ json.RawMessage) {
		if calls.Add(1) == 1 {
			w.Close()
			return
		}
		w.Reply(3)
	})
	f.Start()
	c := dialFake(t, f)
	if err := c.Do(context.Background(), "guest-get-time", nil, nil); err == nil {
		t.Fatal("want an error for a dropped connection")
	}
	var got int
	if err := c.Do(context.Background(), "guest-get-time", nil, &got); err != nil || got != 3 {
		t.Fatalf("after reconnect: %d, %v", got, err)
	}
}

func TestShutdown(t *testing.T) {
	// Silence must outlast the grace; an EOF or a refusal ends the wait
	// at once, so their grace is long enough that a slow fake cannot
	// pass for silence.
	cases := []struct {
		name    string
		handler agenttest.Handler
		grace   time.Duration
		wantErr bool
	}{
		{"eof", func(w *agenttest.Conn, _ json.RawMessage) { w.Close() }, 10 * time.Second, false},
		{"silence", func(*agenttest.Conn, json.RawMessage) {}, 100 * time.Millisecond, false},
		{"refused", func(w *agenttest.Conn, _ json.RawMessage) {
			w.Fail("CommandNotFound", "Command guest-shutdown has been disabled") // as QGA 7.2 says it
		}, 10 * time.Second, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := agenttest.New(t)
			f.Handle("guest-shutdown", tc.handler)
			f.Start()
			c := dialFake(t, f, WithShutdownGrace(tc.grace))
			err := c.Shutdown(context.Background(), "powerdown")
			var qerr *Error
			if tc.wantErr != (err != nil) || (err != nil && (!errors.As(err, &qerr) || qerr.Class != "CommandNotFound")) {
				t.Fatalf("Shutdown: %v", err)
			}
			raw := f.RawRequests()
			if !strings.Contains(raw[len(raw)-1], `"mode":"powerdown"`) {
				t.Fatalf("request %s", raw[len(raw)-1])
			}
			// The client stays usable (the guest did not really go away).
			if err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConcurrentCallsAreSerialized(t *testing.T) {
	f := agenttest.New(t)
	f.Handle("guest-get-time", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ N int }
		json.Unmarshal(args, &a)
		time.Sleep(time.Millisecond)
		w.Reply(a.N)
	})
	f.Start()
	c := dialFake(t, f)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got int
			if err := c.Do(context.Background(), "guest-get-time", map[string]int{"n": i}, &got); err != nil || got != i {
				t.Errorf("call %d: got %d, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
}

func TestCloseFailsCalls(t *testing.T) {
	f := agenttest.New(t)
	f.Handle("guest-get-time", func(*agenttest.Conn, json.RawMessage) {})
	f.Start()
	c := dialFake(t, f)
	time.AfterFunc(50*time.Millisecond, func() { c.Close() })
	if err := c.Do(context.Background(), "guest-get-time", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("in-flight call: %v", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// randomBytes is n bytes no encoding bug can pass through unchanged by luck.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var _ net.Conn = (*agenttest.Conn)(nil)

func TestLoggerSeesEveryAction(t *testing.T) {
	f := agenttest.New(t).Start()
	var buf safeBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := dialFake(t, f, WithLogger(logger))
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"qga connected", `msg="qga request" cmd=guest-ping`, `msg="qga reply" cmd=guest-ping`, "time="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
