package libvirt

import (
	"fmt"
	"net"

	"github.com/yank-dev/yank/machine"
)

// GDBServer implements machine.GDBServer. The domain's QEMU opens its
// gdbstub on the loopback of its own host, so yank can dial it only when
// the libvirtd is on this host (a remote QEMU's loopback is out of
// reach); a socket path would not do either, as the daemon's QEMU runs in
// a mount namespace of its own.
func (g *guest) GDBServer(m *machine.Machine) (string, string, string, error) {
	if !g.b.isLocal() {
		return "", "", "", fmt.Errorf("%w: libvirt host %s is remote and its QEMU's gdbstub listens on that host's loopback", machine.ErrGDBUnsupported, g.b.Name())
	}
	// A free port now; QEMU binds it a moment later (a race with another
	// process taking it is reported by QEMU's gdbserver).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", "", err
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp:" + addr, "tcp", addr, nil
}
