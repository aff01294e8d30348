package engine_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
	"github.com/yank-dev/yank/scenario"
)

// sshd is a private OpenSSH server on a loopback port: its own host key,
// config and authorized key (made here), stopped with the test.
type sshd struct {
	port            int
	key, hostPubKey string // the client's private key; the server's public host key
}

func startSSHD(t *testing.T) sshd {
	t.Helper()
	dir := t.TempDir()
	for _, bin := range []string{"/usr/sbin/sshd", "/usr/bin/ssh-keygen"} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s missing: make deps installs openssh-server: %v", bin, err)
		}
	}
	keygen := func(path string) {
		if out, err := exec.Command("/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	hostKey, clientKey := filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "client_ed25519")
	keygen(hostKey)
	keygen(clientKey)
	pub, _ := os.ReadFile(clientKey + ".pub")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	hostPub, _ := os.ReadFile(hostKey + ".pub")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "sshd_config")
	os.WriteFile(conf, []byte(fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowStreamLocalForwarding yes
`, port, hostKey, filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))), 0o600)
	os.MkdirAll("/run/sshd", 0o755) // privilege separation dir, as Debian's unit makes it
	// Its own process group, killed whole: each connection is served by
	// a child sshd that would outlive the listener. The log is a file, so
	// no pipe is held open by those children.
	logPath := filepath.Join(dir, "sshd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logFile.Close()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		b, _ := os.ReadFile(logPath)
		t.Logf("sshd log:\n%s", b)
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("sshd did not listen on %d: %s", port, b)
		}
	}
	return sshd{port: port, key: clientKey, hostPubKey: string(hostPub)}
}

// libvirt over qemu+ssh://, the transport remote hosts use, against a
// real sshd and libvirtd on this host: with the host key unknown the
// connection is refused (host keys are checked against ~/.ssh/known_hosts
// by default), and with it accepted the trials run over SSH and get the
// verdicts they get locally (TestLibvirtMatrixOverTwoConnections): the
// unbind race HANGs stock, the idle control PASSes.
func TestLibvirtOverSSH(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	s := startSSHD(t)
	base := fmt.Sprintf("qemu+ssh://root@127.0.0.1:%d/system?keyfile=%s&socket=%s", s.port, url.QueryEscape(s.key), url.QueryEscape(d.Socket))
	trials := matrixTrials(t, []string{"unbind-race", "surprise-idle"}, []time.Duration{2 * time.Second, 0})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Unknown host key: no trial runs, and the rows say why (INFRA-ERROR).
	strict, err := libvirt.Parse(base + "#1")
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := machine.NewPool(machine.PoolMember{Backend: strict})
	rows, err := engine.Run(ctx, engine.Config{Pool: pool, Trials: trials[:1], Dir: t.TempDir(), Log: tlog{t}})
	if err != nil {
		t.Fatal(err)
	}
	if v := rows[0].Verdict; v.Outcome != scenario.InfraError {
		t.Fatalf("an unknown SSH host key gave %s (%s), want INFRA-ERROR", v.Outcome, v.Reason)
	} else {
		t.Logf("unknown host key: %s", v.Reason)
	}

	// Accepted (no_verify=1: the test does not write root's known_hosts).
	ssh, err := libvirt.Parse(base + "&no_verify=1#1")
	if err != nil {
		t.Fatal(err)
	}
	pool, _ = machine.NewPool(machine.PoolMember{Backend: ssh})
	start := time.Now()
	rows, err = engine.Run(ctx, engine.Config{Pool: pool, Trials: trials, Dir: t.TempDir(), Log: tlog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d trials over qemu+ssh in %s", len(rows), time.Since(start).Round(time.Second))
	for i, want := range []scenario.Outcome{scenario.Hang, scenario.Pass} {
		v := rows[i].Verdict
		if v.Outcome != want || !strings.HasPrefix(rows[i].Host, "qemu+ssh://") {
			t.Errorf("%s on %s: %s (%s), want %s on the SSH host", v.Scenario, rows[i].Host, v.Outcome, v.Reason, want)
		}
	}
	if n := d.QEMUCount(); n != 0 {
		t.Errorf("%d QEMU processes left on the daemon", n)
	}
}
