package machine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/qmp"
)

type localBackend struct{}

func (localBackend) Name() string { return "local" }

// Start runs QEMU as a child process with its sockets in the machine's
// private runtime dir.
func (localBackend) Start(ctx context.Context, spec Spec, opts Options) (_ *Machine, err error) {
	m, err := NewMachine(spec, opts, Local)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	qemuBin, err := exec.LookPath(m.Spec.QEMU)
	if err != nil {
		return nil, fmt.Errorf("QEMU binary %q not found: install qemu-system-x86 (make deps): %w", m.Spec.QEMU, err)
	}
	accel, err := ResolveAccel(m.Spec.Accel, func() (bool, error) { return KVMUsable(), nil })
	if err != nil {
		return nil, err
	}
	m.Accel = accel
	qemuLog, err := os.OpenFile(m.Paths.QEMULog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer qemuLog.Close()

	args := m.Spec.Args(m.Paths, accel)
	var incoming *os.File
	if opts.Incoming != "" {
		// The state reaches QEMU as an open file (fd 3), not a path in a
		// shell command.
		if incoming, err = os.Open(opts.Incoming); err != nil {
			return nil, fmt.Errorf("guest state: %w", err)
		}
		defer incoming.Close()
		args = append(args, "-incoming", "fd:3")
	}
	cmd := exec.Command(qemuBin, args...)
	if incoming != nil {
		cmd.ExtraFiles = []*os.File{incoming}
	}
	cmd.Dir = m.Paths.Dir
	// Own process group, so a terminal's Ctrl-C reaches yank (which cleans
	// up) rather than killing QEMU under it, and so Kill takes the whole
	// group. Pdeathsig kills QEMU if yank dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = io.MultiWriter(qemuLog, m.Diagnostics())
	// A pipe of our own rather than StdoutPipe: Wait would close that one
	// under the console's reader and lose the last lines.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = stdoutW
	line := shellQuote(append([]string{qemuBin}, args...))
	m.log.Info("starting QEMU", "accel", accel, "dir", m.Paths.Dir, "cmd", line)
	fmt.Fprintf(qemuLog, "%s %s\n", time.Now().UTC().Format(TimeFormat), line)
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("starting %s: %w", qemuBin, err)
	}
	m.Started = time.Now()
	m.Attach(&localQEMU{m: m, cmd: cmd})
	go func() {
		defer stdout.Close()
		m.Console.Feed(stdout)
	}()
	go func() {
		err := cmd.Wait()
		m.ReportExit(err)
		m.log.Info("QEMU exited", "err", err)
	}()
	if err := m.killGroupOnExit(cmd.Process.Pid); err != nil {
		return nil, err
	}
	if err := m.connectQMP(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// localQEMU is the Instance of a QEMU child process.
type localQEMU struct {
	m   *Machine
	cmd *exec.Cmd
}

func (q *localQEMU) DialAgent(ctx context.Context, log *slog.Logger) (*guestagent.Client, error) {
	return guestagent.Dial(ctx, q.m.Paths.Agent, guestagent.WithLogger(log))
}

// Kill sends SIGKILL to QEMU's process group and waits for its exit.
func (q *localQEMU) Kill() {
	syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
	<-q.m.Done()
}

func (q *localQEMU) Close() error { return nil }

func (q *localQEMU) DiagnosticsName() string { return "qemu stderr" }

func (m *Machine) connectQMP(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(m.Paths.QMP); err == nil {
			c, err := qmp.Dial(ctx, m.Paths.QMP, qmp.WithLogger(m.log))
			if err == nil {
				err = m.AttachQMP(ctx, c)
				if err != nil && m.exitedWithin(time.Second) {
					// QEMU quit under the connection (a state file it
					// could not load): its stderr says why.
					return m.diedError("before its QMP monitor answered")
				}
				return err
			}
			if ctx.Err() != nil {
				return fmt.Errorf("connecting to QMP: %w", err)
			}
		}
		select {
		case <-m.exited:
			return m.diedError("before its QMP socket came up")
		case <-ctx.Done():
			return fmt.Errorf("QEMU's QMP socket %s did not come up: %w", m.Paths.QMP, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// shellQuote joins argv into a line a POSIX shell runs as the same
// command: the QEMU command line in the logs, to reproduce a guest by hand.
func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=,./:@+") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// exitedWithin reports whether QEMU exits within d.
func (m *Machine) exitedWithin(d time.Duration) bool {
	select {
	case <-m.exited:
		return true
	case <-time.After(d):
		return false
	}
}
