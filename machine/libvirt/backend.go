package libvirt

import (
	"cmp"
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
	"strconv"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
)

// Backend runs guests as transient domains on a libvirtd, local or
// remote, through go-libvirt's RPC client:
//
//   - the domain XML comes from the same Spec as machine.Local's argv (libvirt XML
//     where libvirt has it, <qemu:commandline> where it has not; see
//     DomainXML);
//   - the domain is created with VIR_DOMAIN_START_AUTODESTROY, so libvirtd
//     destroys it when yank's connection closes, however yank dies;
//   - QMP goes through libvirt's monitor passthrough and QEMU event
//     subscription (QMPTransport), the agent through libvirt's agent
//     passthrough (AgentTransport), and the serial console
//     through a libvirt console stream (it is also logged to a file on the
//     host);
//   - the kernel and initramfs are uploaded into a storage pool on the host
//     (content-addressed volumes, uploaded once per host).
//
// Each machine has its own connection, so one guest's connection dropping
// ends that guest only.
type Backend struct {
	// URI is a libvirt URI: qemu:///system (optionally with
	// ?socket=/path), qemu+tcp://host[:port]/system,
	// qemu+tls://host/system, qemu+ssh://user@host/system. A "#N" fragment
	// sets Capacity (Parse).
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

// Parse parses "URI" or "URI#N" (N guests at once).
func Parse(s string) (*Backend, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", s, err)
	}
	if u.Scheme == "" || !strings.HasPrefix(u.Scheme, "qemu") {
		return nil, fmt.Errorf("libvirt URI %q: want a qemu driver URI such as qemu:///system or qemu+ssh://host/system", s)
	}
	b := &Backend{}
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

// Name implements machine.Backend: the URI without credentials.
func (b *Backend) Name() string {
	u, err := url.Parse(b.URI)
	if err != nil {
		return b.URI
	}
	u.User = nil
	u.Fragment = ""
	return u.String()
}

// GuestCapacity implements machine.Capacitor.
func (b *Backend) GuestCapacity() int { return max(b.Capacity, 1) }

func (b *Backend) storagePool() string   { return cmp.Or(b.StoragePool, "yank") }
func (b *Backend) poolDir() string       { return cmp.Or(b.PoolDir, "/var/lib/libvirt/yank") }
func (b *Backend) consoleLogDir() string { return cmp.Or(b.ConsoleLogDir, "/var/log/libvirt/qemu") }

// isLocal reports whether the URI reaches a libvirtd on this host.
func (b *Backend) isLocal() bool {
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
func (b *Backend) connect(ctx context.Context) (*golibvirt.Libvirt, error) {
	u, err := url.Parse(b.URI)
	if err != nil {
		return nil, fmt.Errorf("libvirt URI %q: %w", b.URI, err)
	}
	u.Fragment = ""
	type result struct {
		l   *golibvirt.Libvirt
		err error
	}
	ch := make(chan result, 1)
	go func() {
		if b.Dial == nil {
			l, err := golibvirt.ConnectToURI(u)
			ch <- result{l, err}
			return
		}
		conn, err := b.Dial(ctx)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		l := golibvirt.NewWithDialer(connDialer{conn})
		if err := l.ConnectToURI(golibvirt.RemoteURI(u)); err != nil {
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

// Check implements machine.Checker: libvirtd answers on a fresh connection.
func (b *Backend) Check(ctx context.Context) error {
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

// guest is the Instance of a libvirt domain: the machine's own
// connection, the domain, and the lifecycle subscription.
type guest struct {
	b      *Backend
	m      *machine.Machine
	l      *golibvirt.Libvirt
	dom    golibvirt.Domain
	cancel context.CancelFunc // lifecycle subscription
	once   sync.Once
}

// Start implements machine.Backend: a transient domain, created paused with
// autodestroy, its console stream opened, QMP connected, then resumed.
func (b *Backend) Start(ctx context.Context, spec machine.Spec, opts machine.Options) (_ *machine.Machine, err error) {
	if opts.Incoming != "" {
		// virDomainSave/Restore would need the saved domain's XML rewritten
		// for a new runtime dir and its autodestroy kept: not done yet, so
		// a trial on libvirt boots cold (and its verdict says so).
		return nil, fmt.Errorf("libvirt %s: restoring a saved state: %w", b.Name(), machine.ErrStateUnsupported)
	}
	opts.Logger = cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)).With("libvirt", b.Name())
	m, err := machine.NewMachine(spec, opts, b)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	spec, log := m.Spec, m.Logger()
	// Nothing listens in the runtime dir: QMP, the agent and QEMU's pid
	// file are on the libvirt host, libvirt's to reach.
	m.Paths.QMP, m.Paths.Agent, m.Paths.PIDFile = "", "", ""
	qemuLog, err := os.OpenFile(m.Paths.QEMULog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer qemuLog.Close()
	logf := func(format string, args ...any) {
		fmt.Fprintf(qemuLog, "%s %s\n", time.Now().UTC().Format(machine.TimeFormat), fmt.Sprintf(format, args...))
	}

	l, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	g := &guest{b: b, m: m, l: l}
	m.Attach(g)
	fail := func(what string, err error) error {
		err = fmt.Errorf("libvirt %s: %s: %w", b.Name(), what, err)
		fmt.Fprintln(m.Diagnostics(), err)
		logf("%v", err)
		return err
	}

	accel, err := machine.ResolveAccel(spec.Accel, func() (bool, error) { return b.hostKVM(ctx, l) })
	if err != nil {
		return nil, fail("accelerator", err)
	}
	m.Accel = accel
	files, err := b.uploadBootFiles(ctx, l, spec, log)
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
	log.Info("creating libvirt domain", "domain", domName, "accel", accel)

	// Lifecycle events before the domain exists, so an early death is seen.
	lctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	lifecycle, err := l.LifecycleEvents(lctx)
	if err != nil {
		return nil, fail("subscribing to lifecycle events", err)
	}
	dom, err := call(ctx, func() (golibvirt.Domain, error) {
		return l.DomainCreateXML(xmlDesc, golibvirt.DomainStartPaused|golibvirt.DomainStartAutodestroy)
	})
	if err != nil {
		return nil, fail("creating domain "+domName, err)
	}
	g.dom = dom
	go g.watch(lifecycle)
	if live, err := call(ctx, func() (string, error) { return l.DomainGetXMLDesc(dom, 0) }); err == nil {
		logf("libvirt %s: live domain XML (libvirt's addresses and aliases):\n%s", b.Name(), live)
	}

	// Console stream: opened while the vCPUs are paused so the log starts
	// with the firmware's first line.
	pr, pw := io.Pipe()
	go m.Console.Feed(pr)
	go func() {
		err := l.DomainOpenConsole(dom, nil, pw, uint32(golibvirt.DomainConsoleForce))
		log.Info("console stream ended", "err", err)
		fmt.Fprintf(m.Diagnostics(), "%s console stream ended (%v)\n", time.Now().UTC().Format(machine.TimeFormat), err)
		if err != nil && !m.Exited() {
			// Say why, rather than Feed's "QEMU exited".
			m.Console.Fail(fmt.Errorf("guest console: libvirt console stream failed: %w", err))
		}
		pw.CloseWithError(io.EOF)
	}()

	q, err := DialQMP(ctx, l, dom, qmp.WithLogger(log))
	if err != nil {
		return nil, fail("QMP through the monitor passthrough", err)
	}
	if err := m.AttachQMP(ctx, q); err != nil {
		return nil, fail("QMP through the monitor passthrough", err)
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

// watch reports the machine's exit when the domain stops or the
// connection drops.
func (g *guest) watch(lifecycle <-chan golibvirt.DomainEventLifecycleMsg) {
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
			switch golibvirt.DomainEventType(ev.Event) {
			case golibvirt.DomainEventStopped:
				why = fmt.Errorf("libvirt domain %s stopped (%s)", g.dom.Name, stoppedReason(ev.Detail))
			case golibvirt.DomainEventCrashed:
				why = fmt.Errorf("libvirt domain %s crashed (detail %d)", g.dom.Name, ev.Detail)
			}
		case <-g.l.Disconnected():
			why = fmt.Errorf("libvirt connection to %s lost (libvirtd destroys the autodestroy domain)", g.b.Name())
		}
	}
	fmt.Fprintln(g.m.Diagnostics(), why)
	g.m.ReportExit(why)
	g.m.Logger().Info("libvirt domain gone", "why", why)
}

func stoppedReason(detail int32) string {
	switch golibvirt.DomainEventStoppedDetailType(detail) {
	case golibvirt.DomainEventStoppedShutdown:
		return "shutdown"
	case golibvirt.DomainEventStoppedDestroyed:
		return "destroyed"
	case golibvirt.DomainEventStoppedCrashed:
		return "QEMU crashed"
	case golibvirt.DomainEventStoppedFailed:
		return "failed"
	}
	return fmt.Sprintf("detail %d", detail)
}

// DialAgent implements machine.Instance: libvirt's agent passthrough.
func (g *guest) DialAgent(ctx context.Context, log *slog.Logger) (*guestagent.Client, error) {
	return DialAgent(ctx, g.l, g.dom, guestagent.WithLogger(log))
}

// DiagnosticsName implements machine.Instance.
func (g *guest) DiagnosticsName() string { return "libvirt" }

// Kill implements machine.Instance: it destroys the domain and waits until
// the machine has exited.
func (g *guest) Kill() {
	m := g.m
	if g.dom.Name == "" {
		// No domain was created: nothing runs, nothing to wait for.
		g.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := call(ctx, func() (struct{}, error) {
		return struct{}{}, g.l.DomainDestroyFlags(g.dom, golibvirt.DomainDestroyDefault)
	})
	cancel()
	if err != nil && !m.Exited() {
		m.Logger().Warn("destroying libvirt domain", "err", err)
		// Closing the connection makes libvirtd destroy it (autodestroy).
		g.l.Disconnect()
	}
	select {
	case <-m.Done():
	case <-time.After(30 * time.Second):
		m.Logger().Error("libvirt domain did not stop after destroy")
	}
}

// Close implements machine.Instance: it ends the lifecycle subscription and
// the connection; libvirtd destroys the domain if it still runs
// (autodestroy).
func (g *guest) Close() error {
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
	return nil
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

// hostKVM reports whether the libvirt host can run KVM guests: for a local
// daemon the local backend's test (a usable /dev/kvm and VMX/SVM), else
// libvirt's capabilities.
func (b *Backend) hostKVM(ctx context.Context, l *golibvirt.Libvirt) (bool, error) {
	if b.isLocal() {
		return machine.KVMUsable(), nil
	}
	caps, err := call(ctx, func() (string, error) { return l.ConnectGetCapabilities() })
	if err != nil {
		return false, err
	}
	return strings.Contains(caps, "<domain type='kvm'") || strings.Contains(caps, `<domain type="kvm"`), nil
}
