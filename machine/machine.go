package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/qmp"
)

// ReadyMarker is the line the guest's init prints once qemu-ga runs
// (images.ReadyMarker; machine only depends on images through file paths).
const ReadyMarker = "YANK-READY"

// agentMissingMarker is printed by init when the agent port never appears.
const agentMissingMarker = "YANK-AGENT-MISSING"

// Options tune how a machine runs; all are optional.
type Options struct {
	Logger      *slog.Logger // host events; default discards
	ConsoleEcho io.Writer    // also write timestamped console lines here
	// LogDir keeps console.log and qemu.log outside the runtime dir so they
	// survive Close (evidence). Default: inside the runtime dir.
	LogDir string
	// Backend runs the guest: nil or Local is a QEMU child process,
	// a *Libvirt is a transient libvirt domain (see backend.go).
	Backend Backend
}

// Machine is a running QEMU guest.
type Machine struct {
	Spec    Spec
	Paths   Paths
	Accel   Accel // accelerator in use, as reported by query-kvm
	Started time.Time
	QMP     *qmp.Client
	Agent   *guestagent.Client // set by WaitReady
	Console *Console
	// Backend is what runs this guest (Local or a *Libvirt).
	Backend Backend

	lv *libvirtGuest // set when Backend is libvirt

	log     *slog.Logger
	cmd     *exec.Cmd
	stderr  *tailBuffer
	exited  chan struct{}
	exitErr error

	janitor     *exec.Cmd
	janitorPipe *os.File

	closeOnce sync.Once
	closeErr  error
}

// Boot starts a guest and waits until its agent answers. On any failure the
// machine is cleaned up and the error says why (with the console tail).
func Boot(ctx context.Context, spec Spec, opts Options) (*Machine, error) {
	m, err := Start(ctx, spec, opts)
	if err != nil {
		return nil, err
	}
	if err := m.WaitReady(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Start launches QEMU on opts.Backend (default Local) and connects to its
// QMP monitor. The guest is still booting when Start returns; use
// WaitReady.
func Start(ctx context.Context, spec Spec, opts Options) (*Machine, error) {
	b := opts.Backend
	if b == nil {
		b = Local
	}
	return b.start(ctx, spec, opts)
}

// startLocal runs QEMU as a child process with sockets in a private
// runtime dir.
func startLocal(ctx context.Context, spec Spec, opts Options) (_ *Machine, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	qemuBin, err := exec.LookPath(spec.QEMU)
	if err != nil {
		return nil, fmt.Errorf("QEMU binary %q not found: install qemu-system-x86 (make deps): %w", spec.QEMU, err)
	}
	accel, err := resolveAccel(spec.Accel)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := newRunDir(spec.Name)
	if err != nil {
		return nil, err
	}
	m := &Machine{Spec: spec, Paths: pathsIn(dir), Accel: accel, Backend: Local, log: log.With("guest", spec.Name), exited: make(chan struct{})}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := m.useLogDir(opts.LogDir); err != nil {
		return nil, err
	}
	if m.Console, err = newConsole(m.Paths.Console, opts.ConsoleEcho); err != nil {
		return nil, err
	}
	qemuLog, err := os.OpenFile(m.Paths.QEMULog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer qemuLog.Close()
	m.stderr = &tailBuffer{max: 16 << 10}

	args := spec.Args(m.Paths, accel)
	m.cmd = exec.Command(qemuBin, args...)
	m.cmd.Dir = dir
	// Own process group, so a terminal's Ctrl-C reaches yank (which cleans
	// up) rather than killing QEMU under it, and so Kill takes the whole
	// group. Pdeathsig kills QEMU if yank dies without cleaning up.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	m.cmd.Stderr = io.MultiWriter(qemuLog, m.stderr)
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	m.log.Info("starting QEMU", "accel", accel, "dir", dir, "cmd", qemuBin+" "+strings.Join(args, " "))
	fmt.Fprintf(qemuLog, "%s %s %s\n", time.Now().UTC().Format(TimeFormat), qemuBin, strings.Join(args, " "))
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", qemuBin, err)
	}
	m.Started = time.Now()
	go m.Console.pump(stdout)
	go func() {
		err := m.cmd.Wait()
		<-m.Console.done
		m.exitErr = err
		close(m.exited)
		m.log.Info("QEMU exited", "err", err)
	}()
	if err := m.startJanitor(); err != nil {
		return nil, err
	}
	if err := m.connectQMP(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// useLogDir moves console.log and qemu.log to dir (Options.LogDir), so
// they outlive the runtime dir; "" keeps them in the runtime dir.
func (m *Machine) useLogDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("log dir: %w", err)
	}
	m.Paths.Console = filepath.Join(dir, "console.log")
	m.Paths.QEMULog = filepath.Join(dir, "qemu.log")
	return nil
}

// resolveAccel picks the accelerator; $YANK_ACCEL (kvm, tcg) overrides auto.
func resolveAccel(a Accel) (Accel, error) {
	if a == AccelAuto {
		switch env := Accel(os.Getenv("YANK_ACCEL")); env {
		case AccelAuto:
		case AccelKVM, AccelTCG:
			a = env
		default:
			return "", fmt.Errorf("YANK_ACCEL=%q: want kvm or tcg", env)
		}
	}
	switch a {
	case AccelAuto:
		if KVMUsable() {
			return AccelKVM, nil
		}
		return AccelTCG, nil
	case AccelKVM:
		if !KVMUsable() {
			return "", errors.New("accel kvm requested but /dev/kvm is missing or not writable; use tcg or auto")
		}
	}
	return a, nil
}

// startJanitor runs a tiny shell that waits for this process to die (its
// stdin pipe closes) and then kills QEMU's process group and removes the
// runtime dir. It covers the exits Go cannot clean up after: SIGKILL, a
// test binary's timeout panic, os.Exit. It runs in its own process group so
// a terminal's Ctrl-C does not kill it before it can act.
func (m *Machine) startJanitor() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	const script = `read -r _; kill -KILL -- "-$1" 2>/dev/null; rm -rf -- "$2"`
	j := exec.Command("/bin/sh", "-c", script, "yank-janitor", fmt.Sprint(m.cmd.Process.Pid), m.Paths.Dir)
	j.Stdin = r
	j.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := j.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting cleanup janitor: %w", err)
	}
	m.janitor, m.janitorPipe = j, w
	return nil
}

func (m *Machine) connectQMP(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(m.Paths.QMP); err == nil {
			c, err := qmp.Dial(ctx, m.Paths.QMP, qmp.WithLogger(m.log))
			if err == nil {
				m.QMP = c
				break
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
	kvm, err := m.QMP.QueryKVM(ctx)
	if err != nil {
		return err
	}
	if kvm.Enabled {
		m.Accel = AccelKVM
	} else {
		m.Accel = AccelTCG
	}
	return nil
}

// WaitReady waits for the init's ready marker on the console and then for
// the guest agent to answer a sync.
func (m *Machine) WaitReady(ctx context.Context) error {
	e, err := m.Console.WaitFunc(ctx, 0, func(s string) bool {
		return strings.Contains(s, ReadyMarker) || strings.Contains(s, agentMissingMarker)
	})
	switch {
	case err != nil && m.Exited():
		return m.diedError("during boot")
	case err != nil:
		return fmt.Errorf("guest %s not ready (no %s on the console): %w\nconsole tail:\n%s", m.Spec.Name, ReadyMarker, err, m.Console.Tail(20))
	case strings.Contains(e.Item, agentMissingMarker):
		return fmt.Errorf("guest %s booted but its agent did not start: %s\nconsole tail:\n%s", m.Spec.Name, e.Item, m.Console.Tail(20))
	}
	m.log.Info("guest init ready", "after", e.Time.Sub(m.Started).Round(time.Millisecond))
	var agent *guestagent.Client
	if m.lv != nil {
		agent, err = m.lv.dialAgent(ctx, m.log)
	} else {
		agent, err = guestagent.Dial(ctx, m.Paths.Agent, guestagent.WithLogger(m.log))
	}
	if err != nil {
		if m.Exited() {
			return m.diedError("while connecting to the agent")
		}
		return fmt.Errorf("guest %s: agent did not answer: %w", m.Spec.Name, err)
	}
	m.Agent = agent
	return nil
}

// Exited reports whether QEMU has exited.
func (m *Machine) Exited() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// Done is closed when QEMU exits.
func (m *Machine) Done() <-chan struct{} { return m.exited }

// ExitError is QEMU's exit status once Done is closed.
func (m *Machine) ExitError() error {
	<-m.exited
	return m.exitErr
}

func (m *Machine) diedError(when string) error {
	<-m.exited
	what := "qemu stderr"
	if m.lv != nil {
		what = "libvirt"
	}
	return fmt.Errorf("QEMU for guest %s died %s (%v)\n%s:\n%s\nconsole tail:\n%s",
		m.Spec.Name, when, m.exitErr, what, indent(m.stderr.String()), m.Console.Tail(20))
}

// Shutdown asks QEMU to quit and waits for it; past ctx it kills QEMU.
// The machine is closed afterwards either way.
func (m *Machine) Shutdown(ctx context.Context) error {
	if m.QMP != nil && !m.Exited() {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := m.QMP.Quit(qctx)
		cancel()
		if err == nil || errors.Is(err, qmp.ErrClosed) {
			select {
			case <-m.exited:
			case <-ctx.Done():
			}
		}
	}
	return m.Close()
}

// Kill stops QEMU at once (SIGKILL to its process group; on libvirt, a
// destroy of the domain) and waits for it.
func (m *Machine) Kill() {
	if m.lv != nil {
		m.lv.kill(m)
		return
	}
	if m.cmd == nil || m.cmd.Process == nil || m.Exited() {
		return
	}
	syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.exited
}

// Close kills QEMU if it still runs, closes the clients and removes the
// runtime dir. It is idempotent.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		if m.Agent != nil {
			m.Agent.Close()
		}
		m.Kill()
		if m.QMP != nil {
			m.QMP.Disconnect()
		}
		if m.Console != nil {
			m.Console.close()
		}
		if m.lv != nil {
			m.lv.close()
		}
		m.closeErr = os.RemoveAll(m.Paths.Dir)
		if m.janitor != nil {
			// Our cleanup is done: stop the janitor without letting it act.
			m.janitor.Process.Kill()
			m.janitor.Wait()
			m.janitorPipe.Close()
		}
		m.log.Info("machine closed")
	})
	return m.closeErr
}

// tailBuffer keeps the last max bytes written (QEMU's stderr, for errors).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

func indent(s string) string {
	if s == "" {
		return "  (empty)"
	}
	return "  | " + strings.ReplaceAll(s, "\n", "\n  | ")
}
