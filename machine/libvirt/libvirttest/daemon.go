// Package libvirttest starts a private libvirtd for yank's end-to-end
// tests of the libvirt backend (machine/libvirt).
//
// The daemon is Debian's /usr/sbin/libvirtd (libvirt-daemon-system),
// started directly (not through systemd) as root, inside its own mount and
// PID namespaces (util-linux unshare):
//
//   - tmpfs over /run/libvirt, /run/lock (console pty lock files),
//     /var/lib/libvirt, /var/log/libvirt and
//     /var/cache/libvirt, and a test-made config dir bound over
//     /etc/libvirt (libvirtd in system mode reads qemu.conf only from
//     there; there is no flag or variable for it), so it shares no state,
//     socket or lock with a system libvirtd and leaves nothing on disk;
//   - its sockets in a temp dir (unix_sock_dir), and a TCP listener on
//     127.0.0.1 with auth none (listen_tcp);
//   - qemu.conf: QEMU as root with no security driver, no cgroups, no
//     per-domain mount namespace, stdio_handler "file" (no virtlogd);
//   - bash is PID 1 of the namespace and reaps the daemonized QEMUs (as
//     PID 1, libvirtd itself would leave them zombies, and libvirt then
//     waits 40 s for every QEMU it kills);
//   - unshare runs with --kill-child and the test's Pdeathsig: when the test
//     process dies or Stop kills unshare, the namespace's init dies and the
//     kernel kills libvirtd and every QEMU in it.
package libvirttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"

	"github.com/yank-dev/yank/internal/e2e"
)

// Daemon is a running private libvirtd.
type Daemon struct {
	Dir     string // temp dir: configs, sockets, logs
	Socket  string // libvirtd's read-write unix socket
	TCPAddr string // 127.0.0.1:port of the TCP listener

	cmd     *exec.Cmd
	janitor *exec.Cmd
	jpipe   *os.File
	nsPID   string // /proc/<pid>/ns/pid of the namespace's init, to check for leaks
	waited  chan struct{}
}

// UnixURI reaches the daemon through its unix socket.
func (d *Daemon) UnixURI() string {
	return "qemu:///system?socket=" + url.QueryEscape(d.Socket)
}

// TCPURI reaches the daemon through its loopback TCP listener.
func (d *Daemon) TCPURI() string { return "qemu+tcp://" + d.TCPAddr + "/system" }

const dirPrefix = "yank-libvirtd-"

// Start starts a daemon and stops it when tb ends. It skips the test under
// -short (e2e.Require) and when not root (system-mode libvirtd needs root),
// and fails when libvirtd or unshare is missing.
func Start(tb testing.TB) *Daemon {
	tb.Helper()
	e2e.Require(tb)
	if os.Geteuid() != 0 {
		tb.Skip("the libvirt backend tests start a system-mode libvirtd: run them as root")
	}
	d, err := StartDaemon()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Stop(); err != nil {
			tb.Errorf("stopping libvirtd: %v", err)
		}
	})
	return d
}

// StartDaemon is Start outside a test.
func StartDaemon() (_ *Daemon, err error) {
	for _, bin := range []string{"/usr/sbin/libvirtd", "/usr/bin/unshare", "/bin/bash"} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s missing: install libvirt-daemon-system and util-linux (make deps): %w", bin, err)
		}
	}
	reapStale()
	dir, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Dir: dir, Socket: filepath.Join(dir, "sock", "libvirt-sock"), waited: make(chan struct{})}
	// The namespace dies with this process (Pdeathsig, --kill-child); this
	// janitor removes the temp dir then.
	if err := d.startJanitor(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d.TCPAddr = fmt.Sprintf("127.0.0.1:%d", port)
	etc := filepath.Join(dir, "etc")
	for _, sub := range []string{etc, filepath.Join(dir, "sock")} {
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		filepath.Join(etc, "libvirtd.conf"): fmt.Sprintf(`unix_sock_dir = %q
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "%d"
auth_tcp = "none"
log_outputs = "3:file:%s"
`, filepath.Join(dir, "sock"), port, filepath.Join(dir, "libvirtd.log")),
		filepath.Join(etc, "qemu.conf"): `user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
`,
		filepath.Join(dir, "init.sh"): fmt.Sprintf(`set -e
for d in /run/libvirt /run/lock /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
	mkdir -p $d
	mount -t tmpfs -o mode=0755 tmpfs $d
done
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt/qemu
mount --bind %[1]s/etc /etc/libvirt
/usr/sbin/libvirtd --listen --config %[1]s/etc/libvirtd.conf --pid-file %[1]s/libvirtd.pid &
# PID 1 of the namespace: wait reaps every orphan (libvirt's QEMUs).
wait $!
`, dir),
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	out, err := os.Create(filepath.Join(dir, "daemon.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	d.cmd = exec.Command("/usr/bin/unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "--kill-child",
		"/bin/bash", filepath.Join(dir, "init.sh"))
	d.cmd.Stdout, d.cmd.Stderr = out, out
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting libvirtd: %w", err)
	}
	go func() {
		d.cmd.Wait()
		close(d.waited)
	}()
	if err := d.waitReady(60 * time.Second); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-d.waited:
			return fmt.Errorf("libvirtd exited at start: %s", d.Tail())
		default:
		}
		if d.nsPID == "" {
			d.nsPID = d.findNamespace()
		}
		if _, err := os.Stat(d.Socket); err == nil {
			last = d.ping()
			if last == nil && d.nsPID != "" {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("libvirtd did not answer on %s within %s (%v): %s", d.Socket, timeout, last, d.Tail())
}

func (d *Daemon) ping() error {
	u, _ := url.Parse(d.UnixURI())
	l, err := libvirt.ConnectToURI(u)
	if err != nil {
		return err
	}
	defer l.Disconnect()
	_, err = l.ConnectGetLibVersion()
	return err
}

// findNamespace returns the PID namespace of unshare's child (the
// namespace's init).
func (d *Daemon) findNamespace() string {
	if d.cmd == nil || d.cmd.Process == nil {
		return ""
	}
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", d.cmd.Process.Pid, d.cmd.Process.Pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(kids))
	if len(f) == 0 {
		return ""
	}
	ns, err := os.Readlink("/proc/" + f[0] + "/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// Processes lists the pids (host view) still in the daemon's namespace.
func (d *Daemon) Processes() []int {
	if d.nsPID == "" {
		return nil
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && ns == d.nsPID {
			pids = append(pids, pid)
		}
	}
	return pids
}

// QEMUCount is the number of QEMU processes the daemon runs.
func (d *Daemon) QEMUCount() int {
	n := 0
	for _, pid := range d.Processes() {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.HasPrefix(string(comm), "qemu-system") {
			n++
		}
	}
	return n
}

// Tail returns the end of libvirtd's log and output, for errors.
func (d *Daemon) Tail() string {
	var b strings.Builder
	for _, f := range []string{"daemon.out", "libvirtd.log"} {
		data, _ := os.ReadFile(filepath.Join(d.Dir, f))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n%s:\n  %s", f, strings.Join(lines, "\n  "))
	}
	return b.String()
}

// Stop kills the daemon's namespace (libvirtd and every QEMU in it), waits
// until no process of it is left, and removes the temp dir.
func (d *Daemon) Stop() error {
	var errs []error
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Kill() // --kill-child: the namespace's init gets SIGKILL
		<-d.waited
		deadline := time.Now().Add(15 * time.Second)
		for len(d.Processes()) > 0 {
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("processes left in the libvirtd namespace: %v", d.Processes()))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if d.Dir != "" {
		if err := os.RemoveAll(d.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if d.janitor != nil {
		d.janitor.Process.Kill()
		d.janitor.Wait()
		d.jpipe.Close()
		d.janitor = nil
	}
	return errors.Join(errs...)
}

func (d *Daemon) startJanitor() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	j := exec.Command("/bin/sh", "-c", `read -r _; sleep 1; rm -rf -- "$1"`, "yank-libvirtd-janitor", d.Dir)
	j.Stdin = r
	j.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := j.Start(); err != nil {
		w.Close()
		return err
	}
	d.janitor, d.jpipe = j, w
	return nil
}

// reapStale removes temp dirs of daemons whose test process is gone (its
// namespace died with it).
func reapStale() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), dirPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		os.RemoveAll(m)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Proxy forwards TCP connections to the daemon's listener and can cut them
// all at once, to test a connection that drops mid-run.
type Proxy struct {
	l      net.Listener
	target string
	mu     chan struct{} // 1-slot lock
	conns  map[net.Conn]bool
	cut    bool
}

// NewProxy listens on 127.0.0.1 and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, target: target, mu: make(chan struct{}, 1), conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Dial opens a connection through the proxy (for machine.Libvirt.Dial).
func (p *Proxy) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.Addr())
}

func (p *Proxy) lock()   { p.mu <- struct{}{} }
func (p *Proxy) unlock() { <-p.mu }

func (p *Proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.lock()
		if p.cut {
			p.unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.unlock()
		go pipe(c, up)
		go pipe(up, c)
	}
}

func pipe(dst, src net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// Cut closes every forwarded connection and refuses new ones.
func (p *Proxy) Cut() {
	p.lock()
	defer p.unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	p.Cut()
	return p.l.Close()
}
