package guestagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"time"
)

// Cmd is a guest-exec request.
type Cmd struct {
	Path string
	Args []string
	// Env, if set, replaces the child's whole environment ("K=V" entries).
	Env []string
	// Input is fed to the child's stdin (base64 on the wire). Large inputs
	// count against QGA's 64 MiB JSON token limit.
	Input []byte
	// CaptureOutput collects stdout and stderr (QGA keeps up to 16 MiB
	// each). Exited then stays false until both pipes close: see Background.
	CaptureOutput bool
}

// Shell is `/bin/sh -c script` with output captured.
func Shell(script string) Cmd {
	return Cmd{Path: "/bin/sh", Args: []string{"-c", script}, CaptureOutput: true}
}

// Background is `/bin/sh -c script` for long-running work whose pid is
// polled later (e.g. a driver unbind that may hang). Nothing is captured:
// stdout and stderr go to logPath (read it with ReadFile) and stdin is
// /dev/null, so no child can hold an agent pipe and keep Exited false.
// Use "/dev/null" to drop the output.
func Background(script, logPath string) Cmd {
	wrapped := fmt.Sprintf("exec >%s 2>&1 </dev/null\n%s", shellQuote(logPath), script)
	return Cmd{Path: "/bin/sh", Args: []string{"-c", wrapped}}
}

// ExecStatus is a guest-exec-status reply.
type ExecStatus struct {
	Exited   bool
	ExitCode int // valid when Exited and Signal == 0
	Signal   int // non-zero when the child was killed by a signal
	Stdout   []byte
	Stderr   []byte
	// StdoutTruncated/StderrTruncated: QGA stopped capturing at its limit.
	StdoutTruncated bool
	StderrTruncated bool
}

// Success reports a normal exit with code 0.
func (s ExecStatus) Success() bool { return s.Exited && s.Signal == 0 && s.ExitCode == 0 }

// wireExecStatus is the JSON shape; []byte fields decode from base64.
type wireExecStatus struct {
	Exited       bool   `json:"exited"`
	ExitCode     *int   `json:"exitcode"`
	Signal       *int   `json:"signal"`
	OutData      []byte `json:"out-data"`
	ErrData      []byte `json:"err-data"`
	OutTruncated bool   `json:"out-truncated"`
	ErrTruncated bool   `json:"err-truncated"`
}

// Exec starts a command in the guest and returns its guest pid.
func (c *Client) Exec(ctx context.Context, cmd Cmd) (int, error) {
	args := struct {
		Path          string   `json:"path"`
		Arg           []string `json:"arg,omitempty"`
		Env           []string `json:"env,omitempty"`
		InputData     []byte   `json:"input-data,omitempty"`
		CaptureOutput bool     `json:"capture-output,omitempty"`
	}{cmd.Path, cmd.Args, cmd.Env, cmd.Input, cmd.CaptureOutput}
	var ret struct {
		PID int `json:"pid"`
	}
	if err := c.Do(ctx, "guest-exec", args, &ret); err != nil {
		return 0, err
	}
	c.log(slog.LevelInfo, "qga exec", "pid", ret.PID, "path", cmd.Path, "args", cmd.Args)
	return ret.PID, nil
}

// ExecStatus queries a pid once. After it has reported Exited, the agent
// forgets the pid and further queries fail with ErrUnknownPID.
func (c *Client) ExecStatus(ctx context.Context, pid int) (ExecStatus, error) {
	var w wireExecStatus
	if err := c.Do(ctx, "guest-exec-status", map[string]int{"pid": pid}, &w); err != nil {
		return ExecStatus{}, err
	}
	s := ExecStatus{
		Exited:          w.Exited,
		Stdout:          w.OutData,
		Stderr:          w.ErrData,
		StdoutTruncated: w.OutTruncated,
		StderrTruncated: w.ErrTruncated,
	}
	if w.ExitCode != nil {
		s.ExitCode = *w.ExitCode
	}
	if w.Signal != nil {
		s.Signal = *w.Signal
	}
	if s.Exited {
		c.log(slog.LevelInfo, "qga exited", "pid", pid, "code", s.ExitCode, "signal", s.Signal,
			"stdout_bytes", len(s.Stdout), "stderr_bytes", len(s.Stderr))
	}
	return s, nil
}

// Wait polls until pid has exited. poll <= 0 polls every 5-20 ms for
// the first 2 s (a trial's probes are short commands whose answer is
// late by up to one interval: with the old back-off to 200 ms a 150 ms
// probe answered after 315 ms) and then backs off to 200 ms. Without a
// deadline on ctx the client timeout bounds the whole wait.
func (c *Client) Wait(ctx context.Context, pid int, poll time.Duration) (ExecStatus, error) {
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	start := time.Now()
	interval := poll
	if poll <= 0 {
		interval = 5 * time.Millisecond
	}
	notExited := func() error {
		return fmt.Errorf("guestagent: waiting for guest pid %d: not exited after %v: %w (%w)",
			pid, time.Since(start).Round(time.Millisecond), ctx.Err(), ErrNotExited)
	}
	seenRunning := false
	for {
		s, err := c.ExecStatus(ctx, pid)
		if err != nil && seenRunning && ctx.Err() != nil && !errors.Is(err, ErrAgentSilent) {
			// The deadline passed between polls (time.After and ctx.Done
			// can be ready together) or during one: the agent had
			// answered "running", so the guest is slow, not silent.
			return s, notExited()
		}
		if err != nil || s.Exited {
			return s, err
		}
		seenRunning = true
		select {
		case <-ctx.Done():
			return s, notExited()
		case <-time.After(interval):
		}
		if poll <= 0 {
			limit := 20 * time.Millisecond
			if time.Since(start) > 2*time.Second {
				limit = 200 * time.Millisecond
			}
			interval = min(2*interval, limit)
		}
	}
}

// Run execs cmd with output captured and waits for it. A non-zero exit is
// not an error here: check ExecStatus.Err.
func (c *Client) Run(ctx context.Context, cmd Cmd) (ExecStatus, error) {
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	cmd.CaptureOutput = true
	pid, err := c.Exec(ctx, cmd)
	if err != nil {
		return ExecStatus{}, err
	}
	s, err := c.Wait(ctx, pid, 0)
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrNotExited) {
		// The deadline passed during a status call: the agent did start
		// the command, so the guest is slow, not (yet) silent.
		err = fmt.Errorf("%w (%w: pid %d was started)", err, ErrNotExited, pid)
	}
	return s, err
}

// RunShell runs `/bin/sh -c script` and waits for it.
func (c *Client) RunShell(ctx context.Context, script string) (ExecStatus, error) {
	return c.Run(ctx, Shell(script))
}

// Err is nil for a successful exit and an *ExitError (with stderr) otherwise.
func (s ExecStatus) Err(path string) error {
	if s.Success() {
		return nil
	}
	return &ExitError{Path: path, Status: s}
}

// Signal sends sig to a guest process. QGA has no signal command, so this
// runs the guest shell's `kill -N pid` and reports its failure (e.g. no such
// process). Signal numbers are the host's, which match an x86-64 Linux guest.
func (c *Client) Signal(ctx context.Context, pid int, sig syscall.Signal) error {
	cmd := fmt.Sprintf("kill -%d %d", int(sig), pid)
	s, err := c.RunShell(ctx, cmd)
	if err != nil {
		return err
	}
	return s.Err(cmd)
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
