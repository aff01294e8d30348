package machine

import (
	"bytes"
	"cmp"
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
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/qmp"
)

// ReadyMarker is the line the guest's init prints once qemu-ga runs
// (images.ReadyMarker; machine only depends on images through file paths).
const ReadyMarker = "YANK-READY"

// ErrNotReady: the guest was still running at its boot deadline but never
// printed ReadyMarker (a stalled or very slow boot; one that died or whose
// agent is missing is a different error).
var ErrNotReady = errors.New("not ready by its boot deadline")

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
	// machine/libvirt's Backend a transient libvirt domain.
	Backend Backend
	// Incoming is a state file SaveState wrote: the guest resumes from
	// it instead of booting. Set by Restore; backends that cannot load
	// one fail with ErrStateUnsupported.
	Incoming string
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
	// Backend is what runs this guest (Local or a libvirt backend).
	Backend Backend

	inst     Instance
	log      *slog.Logger
	diag     *tailBuffer
	exited   chan struct{}
	exitOnce sync.Once
	exitErr  error

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
	return cmp.Or(opts.Backend, Local).Start(ctx, spec, opts)
}

// NewMachine is where a backend's Start begins: it validates spec and
// fills its defaults, makes the guest's private runtime dir (with a
// janitor process that removes it should this process die without
// cleaning up), and opens the console log (in opts.LogDir if set). The
// backend then launches the guest, attaches its Instance (Attach), feeds
// the console (Console.Feed), sets QMP (AttachQMP) and Started, and
// reports the guest's end (ReportExit). If it fails after NewMachine it
// calls Close.
func NewMachine(spec Spec, opts Options, b Backend) (_ *Machine, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.WithDefaults()
	log := cmp.Or(opts.Logger, slog.New(slog.DiscardHandler))
	dir, err := newRunDir(spec.Name)
	if err != nil {
		return nil, err
	}
	m := &Machine{Spec: spec, Paths: pathsIn(dir), Backend: b, log: log.With("guest", spec.Name),
		diag: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := m.useLogDir(opts.LogDir); err != nil {
		return nil, err
	}
	if err := m.startJanitor(); err != nil {
		return nil, err
	}
	if m.Console, err = newConsole(m.Paths.Console, opts.ConsoleEcho); err != nil {
		return nil, err
	}
	return m, nil
}

// Logger is the machine's host event log (Options.Logger, with the guest's
// name), for its backend.
func (m *Machine) Logger() *slog.Logger { return m.log }

// Diagnostics is where the backend writes what explains a guest's death
// (QEMU's stderr, libvirt's errors); the last 16 KiB are in the error of a
// guest that died.
func (m *Machine) Diagnostics() io.Writer { return m.diag }

// Attach makes inst the machine's running guest: Kill, Close and WaitReady
// go through it from now on. A backend calls it once, as soon as there is
// something to kill or close.
func (m *Machine) Attach(inst Instance) { m.inst = inst }

// AttachQMP makes c the machine's QMP client and reads the accelerator
// QEMU really uses (query-kvm) into Accel.
func (m *Machine) AttachQMP(ctx context.Context, c *qmp.Client) error {
	m.QMP = c
	kvm, err := c.QueryKVM(ctx)
	if err != nil {
		return err
	}
	m.Accel = AccelTCG
	if kvm.Enabled {
		m.Accel = AccelKVM
	}
	return nil
}

// ReportExit records that the guest is gone and why (QEMU's exit status,
// the libvirt event); Done closes. It first lets the console drain (at
// most 2 s: a panic message may still be arriving). Calls after the first
// do nothing.
func (m *Machine) ReportExit(why error) {
	m.exitOnce.Do(func() {
		if m.Console != nil {
			select {
			case <-m.Console.Drained():
			case <-time.After(2 * time.Second):
			}
		}
		m.exitErr = why
		close(m.exited)
	})
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

// WaitReady waits for the init's ready marker on the console and then for
// the guest agent to answer a sync.
func (m *Machine) WaitReady(ctx context.Context) error {
	e, err := m.Console.WaitFunc(ctx, 0, func(s string) bool {
		return strings.Contains(s, ReadyMarker) || strings.Contains(s, agentMissingMarker)
	})
	switch {
	case err != nil && m.Exited():
		return m.diedError("during boot")
	case errors.Is(err, context.DeadlineExceeded):
		report := m.stallReport(ctx)
		m.log.Warn("guest not ready by the boot deadline", "report", report)
		return fmt.Errorf("guest %s %w (no %s on the console): %w\nconsole tail:\n%sat the deadline:\n%s", m.Spec.Name, ErrNotReady, ReadyMarker, err, m.Console.Tail(20), indent(strings.TrimSpace(report)))
	case err != nil:
		return fmt.Errorf("guest %s not ready (no %s on the console): %w\nconsole tail:\n%s", m.Spec.Name, ReadyMarker, err, m.Console.Tail(20))
	case strings.Contains(e.Item, agentMissingMarker):
		return fmt.Errorf("guest %s booted but its agent did not start: %s\nconsole tail:\n%s", m.Spec.Name, e.Item, m.Console.Tail(20))
	}
	m.log.Info("guest init ready", "after", e.Time.Sub(m.Started).Round(time.Millisecond))
	if m.inst == nil {
		return fmt.Errorf("guest %s: its backend attached no instance", m.Spec.Name)
	}
	agent, err := m.inst.DialAgent(ctx, m.log)
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
	what := "diagnostics"
	if m.inst != nil {
		what = m.inst.DiagnosticsName()
	}
	return fmt.Errorf("QEMU for guest %s died %s (%v)\n%s:\n%s\nconsole tail:\n%s",
		m.Spec.Name, when, m.exitErr, what, indent(m.diag.String()), m.Console.Tail(20))
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

// Kill stops QEMU at once (locally SIGKILL to its process group; on
// libvirt, a destroy of the domain) and waits for it.
func (m *Machine) Kill() {
	if m.inst == nil || m.Exited() {
		return
	}
	m.inst.Kill()
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
		var instErr error
		if m.inst != nil {
			instErr = m.inst.Close()
		}
		m.closeErr = errors.Join(instErr, os.RemoveAll(m.Paths.Dir))
		m.stopJanitor()
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
