package machine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/yank-dev/yank/gdbstub"
)

// GDBServer is implemented by Instances whose QEMU can open a gdbstub that
// this host can dial: it returns the device argument of HMP's
// "gdbserver" and the network address to dial.
type GDBServer interface {
	GDBServer(m *Machine) (device, network, addr string, err error)
}

// ErrGDBUnsupported: the backend cannot give this host a gdbstub.
var ErrGDBUnsupported = errors.New("this backend cannot give yank a gdbstub")

// GDB opens QEMU's gdbstub at run time (HMP "gdbserver", so a guest
// restored from a snapshot gets one after the restore, and the snapshot's
// command line is the same with or without it) and connects to it. QEMU
// stops the guest when the client connects: it stays stopped until the
// caller continues or detaches.
func (m *Machine) GDB(ctx context.Context) (*gdbstub.Client, error) {
	gs, ok := m.inst.(GDBServer)
	if !ok {
		return nil, fmt.Errorf("guest %s on %s: %w", m.Spec.Name, m.Backend.Name(), ErrGDBUnsupported)
	}
	device, network, addr, err := gs.GDBServer(m)
	if err != nil {
		return nil, fmt.Errorf("guest %s: gdbstub: %w", m.Spec.Name, err)
	}
	if out, err := m.QMP.HMP(ctx, "gdbserver "+device); err != nil {
		return nil, fmt.Errorf("guest %s: starting the gdbstub (%s): %w", m.Spec.Name, device, err)
	} else if out != "" && !isGDBServerStarted(out) {
		return nil, fmt.Errorf("guest %s: starting the gdbstub (%s): %q", m.Spec.Name, device, out)
	}
	m.log.Debug("gdbstub", "device", device)
	return gdbstub.Dial(ctx, network, addr)
}

// isGDBServerStarted: QEMU answers "Waiting for gdb connection on device
// '...'" when it started the stub.
func isGDBServerStarted(out string) bool {
	return strings.Contains(strings.ToLower(out), "waiting for gdb connection")
}

// GDBServer implements GDBServer: a socket in the guest's private runtime
// dir.
func (q *localQEMU) GDBServer(m *Machine) (string, string, string, error) {
	p := filepath.Join(m.Paths.Dir, "gdb.sock")
	return "unix:" + p + ",server=on,wait=off", "unix", p, nil
}
