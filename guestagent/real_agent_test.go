package guestagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
)

const qemuGA = "/usr/sbin/qemu-ga"

// startRealAgent runs the real qemu-ga on the host, listening on a UNIX
// socket: the same protocol a guest agent speaks over virtio-serial.
// Commands that could touch the host itself are blocked.
func startRealAgent(t *testing.T) (dir string, agent *os.Process, c *Client) {
	t.Helper()
	if _, err := os.Stat(qemuGA); err != nil {
		t.Fatalf("%s is required (apt-get install qemu-guest-agent, or make deps): %v", qemuGA, err)
	}
	dir, err := os.MkdirTemp("", "qga-real") // short path: sun_path limit
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	sock := filepath.Join(dir, "qga.sock")
	blocked := "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid," +
		"guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-set-time,guest-set-user-password," +
		"guest-set-vcpus,guest-set-memory-blocks"
	cmd := exec.Command(qemuGA, "-m", "unix-listen", "-p", sock, "-t", dir,
		"-f", filepath.Join(dir, "qga.pid"), "-l", filepath.Join(dir, "qga.log"), "-b", blocked)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "qga.log"))
			t.Logf("qemu-ga log:\n%s", log)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err = Dial(ctx, sock)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return dir, cmd.Process, c
}

func TestRealAgent(t *testing.T) {
	e2e.Require(t)
	dir, agent, c := startRealAgent(t)
	ctx := context.Background()

	t.Run("Ping", func(t *testing.T) {
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Info", func(t *testing.T) {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Version == "" || !info.Supports("guest-exec") || info.Supports("guest-shutdown") {
			t.Fatalf("version %q, exec %v, shutdown %v", info.Version,
				info.Supports("guest-exec"), info.Supports("guest-shutdown"))
		}
	})

	t.Run("RunEcho", func(t *testing.T) {
		st, err := c.Run(ctx, Cmd{Path: "/bin/echo", Args: []string{"hi"}})
		if err != nil {
			t.Fatal(err)
		}
		if !st.Success() || string(st.Stdout) != "hi\n" {
			t.Fatalf("%+v", st)
		}
	})

	t.Run("NonZeroExit", func(t *testing.T) {
		st, err := c.RunShell(ctx, "echo out; echo err >&2; exit 7")
		if err != nil {
			t.Fatal(err)
		}
		if st.ExitCode != 7 || string(st.Stdout) != "out\n" || string(st.Stderr) != "err\n" {
			t.Fatalf("%+v", st)
		}
		var exitErr *ExitError
		if err := st.Err("script"); !errors.As(err, &exitErr) || !strings.Contains(err.Error(), "exit code 7: err") {
			t.Fatalf("Err: %v", err)
		}
	})

	t.Run("Input", func(t *testing.T) {
		st, err := c.Run(ctx, Cmd{Path: "/bin/cat", Input: []byte("piped\n")})
		if err != nil || string(st.Stdout) != "piped\n" {
			t.Fatalf("%+v %v", st, err)
		}
	})

	t.Run("ExecErrors", func(t *testing.T) {
		_, err := c.Exec(ctx, Cmd{Path: "/nonexistent/binary"})
		var qerr *Error
		if !errors.As(err, &qerr) || qerr.Class != "GenericError" || qerr.Command != "guest-exec" {
			t.Fatalf("got %v", err)
		}
		// A pid is forgotten once reported exited.
		pid, err := c.Exec(ctx, Cmd{Path: "/bin/true"})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Wait(ctx, pid, 10*time.Millisecond); err != nil || !st.Success() {
			t.Fatalf("%+v %v", st, err)
		}
		if _, err := c.ExecStatus(ctx, pid); !errors.Is(err, ErrUnknownPID) {
			t.Fatalf("want ErrUnknownPID, got %v", err)
		}
	})

	t.Run("LargeOutput", func(t *testing.T) {
		st, err := c.RunShell(ctx, "head -c 2000000 /dev/zero")
		if err != nil || len(st.Stdout) != 2000000 {
			t.Fatalf("got %d bytes, %v", len(st.Stdout), err)
		}
	})

	t.Run("BackgroundAndSignal", func(t *testing.T) {
		logPath := filepath.Join(dir, "bg.log")
		pid, err := c.Exec(ctx, Background("echo started; exec sleep 5", logPath))
		if err != nil {
			t.Fatal(err)
		}
		// Not captured, so Exited is meaningful while it runs.
		if st, err := c.ExecStatus(ctx, pid); err != nil || st.Exited {
			t.Fatalf("%+v %v", st, err)
		}
		// Kill it only once it is running the script, not before the
		// redirect: poll its log.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if out, _ := os.ReadFile(logPath); string(out) == "started\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("background script never started")
			}
		}
		if err := c.Signal(ctx, pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		st, err := c.Wait(ctx, pid, 10*time.Millisecond)
		if err != nil || st.Signal != int(syscall.SIGKILL) {
			t.Fatalf("%+v %v", st, err)
		}
		if out, err := c.ReadFile(ctx, logPath); err != nil || string(out) != "started\n" {
			t.Fatalf("log %q, %v", out, err)
		}
		if err := c.Signal(ctx, pid, syscall.SIGKILL); err == nil {
			t.Fatal("signalling a dead pid succeeded")
		}
	})

	t.Run("Files", func(t *testing.T) {
		path := filepath.Join(dir, "data")
		want := make([]byte, 3<<20+17) // several default-size chunks
		rand.Read(want)
		if err := c.WriteFile(ctx, path, want, "w"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
			t.Fatalf("host sees %d bytes", len(got))
		}
		got, err := c.ReadFile(ctx, path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %d bytes, %v", len(got), err)
		}
		if err := c.WriteFile(ctx, path, []byte("more"), "a"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.HasSuffix(got, []byte("more")) {
			t.Fatal("append lost")
		}
		if _, err := c.ReadFile(ctx, filepath.Join(dir, "missing")); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("want ENOENT, got %v", err)
		}
	})

	t.Run("WriteSysfs", func(t *testing.T) {
		path := filepath.Join(dir, "attr")
		os.WriteFile(path, []byte("old value\n"), 0o644)
		if err := c.WriteSysfs(ctx, path, "1"); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != "1" {
			t.Fatalf("attr is %q, want truncated and replaced", got)
		}
		// A write the kernel rejects: /dev/full fails write(2) with ENOSPC,
		// which QGA only sees at flush, like a sysfs store() error.
		err := c.WriteSysfs(ctx, "/dev/full", "0000:01:00.0")
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("want ENOSPC, got %v", err)
		}
		if !strings.Contains(err.Error(), "/dev/full") || !strings.Contains(err.Error(), "0000:01:00.0") {
			t.Fatalf("error does not say what failed: %v", err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ShutdownRefused", func(t *testing.T) {
		err := c.Shutdown(ctx, "powerdown")
		var qerr *Error
		// QGA 7.2 reports a blocked command as CommandNotFound ("Command
		// guest-shutdown has been disabled"), not CommandDisabled.
		if !errors.As(err, &qerr) || qerr.Class != "CommandNotFound" || !strings.Contains(qerr.Desc, "disabled") {
			t.Fatalf("want a disabled-command error, got %v", err)
		}
	})

	t.Run("ResyncAfterTimeout", func(t *testing.T) {
		// Freeze the agent so a command's reply arrives after we gave up.
		// (guest-file-open on a FIFO does not block: QGA opens O_NONBLOCK.)
		if err := agent.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		var handle int64
		err := c.Do(tctx, "guest-file-open", map[string]string{"path": "/dev/null", "mode": "r"}, &handle)
		agent.Signal(syscall.SIGCONT)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "guest-file-open") {
			t.Fatalf("want a guest-file-open timeout, got %v", err)
		}
		time.Sleep(100 * time.Millisecond) // let the late reply land
		// The late {"return": <handle>} must not become this reply.
		var ns int64
		if err := c.Do(ctx, "guest-get-time", nil, &ns); err != nil {
			t.Fatal(err)
		}
		if ns < 1e18 {
			t.Fatalf("guest-get-time returned %d: a stale reply was taken", ns)
		}
	})

	t.Run("SilentAgent", func(t *testing.T) {
		if err := agent.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer agent.Signal(syscall.SIGCONT)
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c.Ping(tctx) // sent, then times out, forcing a resync next
		tctx2, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel2()
		start := time.Now()
		err := c.Ping(tctx2)
		if !errors.Is(err, ErrAgentSilent) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("want ErrAgentSilent, got %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v", d)
		}
		agent.Signal(syscall.SIGCONT)
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("after SIGCONT: %v", err)
		}
	})
}
