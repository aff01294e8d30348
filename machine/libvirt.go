package machine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/qmp"
)

// Libvirt runs guests as transient domains on a libvirtd, local or
// remote, through go-libvirt's RPC client:
//
//   - the domain XML comes from the same Spec as Local's argv (libvirt XML
//     where libvirt has it, <qemu:commandline> where it has not; see
//     DomainXML);
//   - the domain is created with VIR_DOMAIN_START_AUTODESTROY, so libvirtd
//     destroys it when yank's connection closes, however yank dies;
//   - QMP goes through libvirt's monitor passthrough and QEMU event
//     subscription (qmp.LibvirtTransport), the agent through libvirt's agent
//     passthrough (guestagent.LibvirtTransport), and the serial console
//     through a libvirt console stream (it is also logged to a file on the
//     host);
//   - the kernel and initramfs are uploaded into a storage pool on the host
//     (content-addressed volumes, uploaded once per host).
//
// Each machine has its own connection, so one guest's connection dropping
// ends that guest only.
type Libvirt struct {
	// URI is a libvirt URI: qemu:///system (optionally with
	// ?socket=/path), qemu+tcp://host[:port]/system,
	// qemu+tls://host/system, qemu+ssh://user@host/system. A "#N" fragment
	// sets Capacity (ParseLibvirt).
	URI string
	// Capacity is how many guests a Pool runs here at once (default 1).
	Capacity int
	// StoragePool holds the uploaded kernels and initramfs images (default
	// "yank"). If it does not exist yank creates it as a transient dir pool
	// at PoolDir (default /var/lib/libvirt/yank).
	StoragePool string
	PoolDir     string
	// ConsoleLogDir is the host dir for the serial console log files libvirt
	// writes (default /var/log/libvirt/qemu).
	ConsoleLogDir string
	// Dial, if set, opens the connection to libvirtd instead of the URI's
	// transport (the URI still names the driver, e.g. qemu:///system). Tests
	// use it to put a connection they can cut in between.
	Dial func(ctx context.Context) (net.Conn, error)

	mu      sync.Mutex
	volumes map[string]*volumeUpload // per volume name: one upload per process
}

// ParseLibvirt parses "URI" or "URI#N" (N guests at once).
func ParseLibvirt(s string) (*Libvirt, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", s, err)
	}
	if u.Scheme == "" || !strings.HasPrefix(u.Scheme, "qemu") {
		return nil, fmt.Errorf("libvirt URI %q: want a qemu driver URI such as qemu:///system or qemu+ssh://host/system", s)
	}
	b := &Libvirt{}
	if u.Fragment != "" {
		n, err := strconv.Atoi(u.Fragment)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("libvirt URI %q: capacity #%s: want a positive number of guests", s, u.Fragment)
		}
		b.Capacity = n
		u.Fragment = ""
	}
	b.URI = u.String()
	return b, nil
}

// Name implements Backend: the URI without credentials.
func (b *Libvirt) Name() string {
	u, err := url.Parse(b.URI)
	if err != nil {
		return b.URI
	}
	u.User = nil
	u.Fragment = ""
	return u.String()
}

// GuestCapacity implements Capacitor.
func (b *Libvirt) GuestCapacity() int { return max(b.Capacity, 1) }

func (b *Libvirt) storagePool() string   { return cmpOr(b.StoragePool, "yank") }
func (b *Libvirt) poolDir() string       { return cmpOr(b.PoolDir, "/var/lib/libvirt/yank") }
func (b *Libvirt) consoleLogDir() string { return cmpOr(b.ConsoleLogDir, "/var/log/libvirt/qemu") }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// isLocal reports whether the URI reaches a libvirtd on this host.
func (b *Libvirt) isLocal() bool {
	u, err := url.Parse(b.URI)
	if err != nil {
		return false
	}
	switch u.Hostname() {
	case "", "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}

// connect opens a new libvirt connection, bounded by ctx.
func (b *Libvirt) connect(ctx context.Context) (*libvirt.Libvirt, error) {
	u, err := url.Parse(b.URI)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", b.URI, err)
	}
	u.Fragment = ""
	type result struct {
		l   *libvirt.Libvirt
		err error
	}
	ch := make(chan result, 1)
	go func() {
		if b.Dial == nil {
			l, err := libvirt.ConnectToURI(u)
			ch <- result{l, err}
			return
		}
		conn, err := b.Dial(ctx)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		l := libvirt.NewWithDialer(connDialer{conn})
		if err := l.ConnectToURI(libvirt.RemoteURI(u)); err != nil {
			conn.Close()
			ch <- result{nil, err}
			return
		}
		ch <- result{l, nil}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("connecting to libvirt at %s: %w", b.Name(), r.err)
		}
		return r.l, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.l != nil {
				r.l.Disconnect()
			}
		}()
		return nil, fmt.Errorf("connecting to libvirt at %s: %w", b.Name(), ctx.Err())
	}
}

// connDialer hands go-libvirt a connection we opened.
type connDialer struct{ conn net.Conn }

func (d connDialer) Dial() (net.Conn, error) { return d.conn, nil }

// Check implements Checker: libvirtd answers on a fresh connection.
func (b *Libvirt) Check(ctx context.Context) error {
	l, err := b.connect(ctx)
	if err != nil {
		return err
	}
	defer l.Disconnect()
	_, err = call(ctx, func() (uint64, error) { return l.ConnectGetLibVersion() })
	return err
}

// call runs a go-libvirt call (which takes no context) bounded by ctx.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// libvirtGuest is the libvirt side of a Machine.
type libvirtGuest struct {
	b      *Libvirt
	l      *libvirt.Libvirt
	dom    libvirt.Domain
	cancel context.CancelFunc // lifecycle subscription
	once   sync.Once
}

func (b *Libvirt) start(ctx context.Context, spec Spec, opts Options) (_ *Machine, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := newRunDir(spec.Name)
	if err != nil {
		return nil, err
	}
	m := &Machine{Spec: spec, Paths: Paths{Dir: dir, Console: filepath.Join(dir, "console.log"), QEMULog: filepath.Join(dir, "qemu.log")},
		Backend: b, log: log.With("guest", spec.Name, "libvirt", b.Name()), exited: make(chan struct{}), stderr: &tailBuffer{max: 16 << 10}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := m.useLogDir(opts.LogDir); err != nil {
		return nil, err
	}
	if err := m.startDirJanitor(); err != nil {
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
	logf := func(format string, args ...any) {
		fmt.Fprintf(qemuLog, "%s %s\n", time.Now().UTC().Format(TimeFormat), fmt.Sprintf(format, args...))
	}

	l, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	g := &libvirtGuest{b: b, l: l}
	m.lv = g
	fail := func(what string, err error) error {
		err = fmt.Errorf("libvirt %s: %s: %w", b.Name(), what, err)
		m.stderr.Write([]byte(err.Error() + "\n"))
		logf("%v", err)
		return err
	}

	accel, err := b.resolveAccel(ctx, l, spec.Accel)
	if err != nil {
		return nil, fail("accelerator", err)
	}
	m.Accel = accel
	files, err := b.uploadBootFiles(ctx, l, spec, m.log)
	if err != nil {
		return nil, fail("uploading kernel and initramfs", err)
	}
	domName := domainName(spec.Name)
	xmlDesc, err := DomainXML(spec, DomainOptions{
		Name: domName, Accel: accel, Kernel: files.kernel, Initrd: files.initrd,
		ConsoleLog: b.consoleLogDir() + "/" + domName + "-console.log",
	})
	if err != nil {
		return nil, fail("domain XML", err)
	}
	logf("libvirt %s: creating transient domain %s (paused, autodestroy)\n%s", b.Name(), domName, xmlDesc)
	m.log.Info("creating libvirt domain", "domain", domName, "accel", accel)

	// Lifecycle events before the domain exists, so an early death is seen.
	lctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	lifecycle, err := l.LifecycleEvents(lctx)
	if err != nil {
		return nil, fail("subscribing to lifecycle events", err)
	}
	dom, err := call(ctx, func() (libvirt.Domain, error) {
		return l.DomainCreateXML(xmlDesc, libvirt.DomainStartPaused|libvirt.DomainStartAutodestroy)
	})
	if err != nil {
		return nil, fail("creating domain "+domName, err)
	}
	g.dom = dom
	go g.watch(m, lifecycle)
	if live, err := call(ctx, func() (string, error) { return l.DomainGetXMLDesc(dom, 0) }); err == nil {
		logf("libvirt %s: live domain XML (libvirt's addresses and aliases):\n%s", b.Name(), live)
	}

	// Console stream: opened while the vCPUs are paused so the log starts
	// with the firmware's first line.
	pr, pw := io.Pipe()
	go m.Console.pump(pr)
	go func() {
		err := l.DomainOpenConsole(dom, nil, pw, uint32(libvirt.DomainConsoleForce))
		m.log.Info("console stream ended", "err", err)
		fmt.Fprintf(m.stderr, "%s console stream ended (%v)\n", time.Now().UTC().Format(TimeFormat), err)
		if err != nil && !m.Exited() {
			// Say why, rather than the pump's "QEMU exited".
			m.Console.lines.Close(fmt.Errorf("guest console: libvirt console stream failed: %w", err))
		}
		pw.CloseWithError(io.EOF)
	}()

	m.QMP, err = qmp.DialLibvirt(ctx, l, dom, qmp.WithLogger(m.log))
	if err != nil {
		return nil, fail("QMP through the monitor passthrough", err)
	}
	if kvm, err := m.QMP.QueryKVM(ctx); err == nil {
		m.Accel = AccelTCG
		if kvm.Enabled {
			m.Accel = AccelKVM
		}
	}
	// go-libvirt gives no signal when the console stream is open; QEMU
	// writes to a pty only once its other end is open, so give the open a
	// moment before the first output (boot takes seconds anyway).
	time.Sleep(200 * time.Millisecond)
	if _, err := call(ctx, func() (struct{}, error) { return struct{}{}, l.DomainResume(dom) }); err != nil {
		return nil, fail("resuming domain", err)
	}
	m.Started = time.Now()
	logf("libvirt %s: domain %s (uuid %s) running", b.Name(), domName, hex.EncodeToString(dom.UUID[:]))
	return m, nil
}

// startDirJanitor removes the local runtime dir if yank dies without
// cleaning up (the domain itself is libvirtd's to destroy: autodestroy).
func (m *Machine) startDirJanitor() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	j := exec.Command("/bin/sh", "-c", `read -r _; rm -rf -- "$1"`, "yank-janitor", m.Paths.Dir)
	j.Stdin = r
	j.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := j.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting cleanup janitor: %w", err)
	}
	m.janitor, m.janitorPipe = j, w
	return nil
}

// watch closes m.exited when the domain stops or the connection drops.
func (g *libvirtGuest) watch(m *Machine, lifecycle <-chan libvirt.DomainEventLifecycleMsg) {
	var why error
	for why == nil {
		select {
		case ev, ok := <-lifecycle:
			if !ok {
				if !g.l.IsConnected() {
					why = fmt.Errorf("libvirt connection to %s lost (libvirtd destroys the autodestroy domain)", g.b.Name())
				} else {
					why = errors.New("machine closed")
				}
				break
			}
			if ev.Dom.UUID != g.dom.UUID {
				continue
			}
			switch libvirt.DomainEventType(ev.Event) {
			case libvirt.DomainEventStopped:
				why = fmt.Errorf("libvirt domain %s stopped (%s)", g.dom.Name, stoppedReason(ev.Detail))
			case libvirt.DomainEventCrashed:
				why = fmt.Errorf("libvirt domain %s crashed (detail %d)", g.dom.Name, ev.Detail)
			}
		case <-g.l.Disconnected():
			why = fmt.Errorf("libvirt connection to %s lost (libvirtd destroys the autodestroy domain)", g.b.Name())
		}
	}
	m.stderr.Write([]byte(why.Error() + "\n"))
	// Let the console drain (a panic message may still be arriving).
	select {
	case <-m.Console.done:
	case <-time.After(2 * time.Second):
	}
	m.exitErr = why
	close(m.exited)
	m.log.Info("libvirt domain gone", "why", why)
}

func stoppedReason(detail int32) string {
	switch libvirt.DomainEventStoppedDetailType(detail) {
	case libvirt.DomainEventStoppedShutdown:
		return "shutdown"
	case libvirt.DomainEventStoppedDestroyed:
		return "destroyed"
	case libvirt.DomainEventStoppedCrashed:
		return "QEMU crashed"
	case libvirt.DomainEventStoppedFailed:
		return "failed"
	}
	return fmt.Sprintf("detail %d", detail)
}

func (g *libvirtGuest) dialAgent(ctx context.Context, log *slog.Logger) (*guestagent.Client, error) {
	return guestagent.DialLibvirt(ctx, g.l, g.dom, guestagent.WithLogger(log))
}

// kill destroys the domain and waits until the machine has exited.
func (g *libvirtGuest) kill(m *Machine) {
	if m.Exited() {
		return
	}
	if g.dom.Name == "" {
		// No domain was created: nothing runs, nothing to wait for.
		g.close()
		return
	}
	{
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := call(ctx, func() (struct{}, error) {
			return struct{}{}, g.l.DomainDestroyFlags(g.dom, libvirt.DomainDestroyDefault)
		})
		cancel()
		if err != nil && !m.Exited() {
			m.log.Warn("destroying libvirt domain", "err", err)
			// Closing the connection makes libvirtd destroy it (autodestroy).
			g.l.Disconnect()
		}
	}
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		m.log.Error("libvirt domain did not stop after destroy")
	}
}

// close ends the lifecycle subscription and the connection; libvirtd
// destroys the domain if it still runs (autodestroy).
func (g *libvirtGuest) close() {
	g.once.Do(func() {
		if g.cancel != nil {
			g.cancel()
		}
		done := make(chan struct{})
		go func() {
			g.l.Disconnect()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
}

// domainName is a unique libvirt domain name for a guest.
func domainName(name string) string {
	var rnd [4]byte
	rand.Read(rnd[:])
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
	if len(clean) > 32 {
		clean = clean[:32]
	}
	return fmt.Sprintf("yank-%s-%d-%s", clean, os.Getpid(), hex.EncodeToString(rnd[:]))
}

// resolveAccel picks the accelerator for this host: $YANK_ACCEL or the
// spec's; on auto, KVM if the host offers it (for a local daemon, the same
// test as the local backend: a usable /dev/kvm and vmx/svm).
func (b *Libvirt) resolveAccel(ctx context.Context, l *libvirt.Libvirt, a Accel) (Accel, error) {
	if a == AccelAuto {
		switch env := Accel(os.Getenv("YANK_ACCEL")); env {
		case AccelAuto:
		case AccelKVM, AccelTCG:
			a = env
		default:
			return "", fmt.Errorf("YANK_ACCEL=%q: want kvm or tcg", env)
		}
	}
	if a != AccelAuto {
		return a, nil
	}
	if b.isLocal() {
		if KVMUsable() {
			return AccelKVM, nil
		}
		return AccelTCG, nil
	}
	caps, err := call(ctx, func() (string, error) { return l.ConnectGetCapabilities() })
	if err != nil {
		return "", err
	}
	if strings.Contains(caps, "<domain type='kvm'") || strings.Contains(caps, `<domain type="kvm"`) {
		return AccelKVM, nil
	}
	return AccelTCG, nil
}
