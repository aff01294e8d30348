package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// ErrStateUnsupported is returned by SaveState and Restore on a backend
// that cannot save or restore a guest's state: the caller boots cold.
var ErrStateUnsupported = errors.New("this backend cannot save or restore guest state")

// SaveState stops the guest and writes its whole state (RAM, devices,
// vCPUs) to path, through QEMU's migration to a file. QEMU 7.2 has no
// file: migration URI and go-qemu cannot pass a file descriptor over QMP,
// so the stream goes through exec:cat. Once saved, the guest stays paused
// (QEMU's "postmigrate"): Close it. On failure (a device that blocks
// migration, such as QEMU's nvme) the guest runs on as before and path is
// removed.
func (m *Machine) SaveState(ctx context.Context, path string) (err error) {
	if m.Backend != Local {
		return fmt.Errorf("guest %s on %s: %w", m.Spec.Name, m.Backend.Name(), ErrStateUnsupported)
	}
	start := time.Now()
	if err := m.QMP.Stop(ctx); err != nil {
		return fmt.Errorf("saving guest state: stop: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(path)
			if cerr := m.QMP.Cont(ctx); cerr != nil {
				err = errors.Join(err, fmt.Errorf("resuming the guest: %w", cerr))
			}
		}
	}()
	// A stopped guest migrates in one pass; the default 32 MiB/s cap
	// would make that pass last seconds.
	if err := m.QMP.SetMigrationParameters(ctx, map[string]any{"max-bandwidth": int64(1) << 40}); err != nil {
		return fmt.Errorf("saving guest state: %w", err)
	}
	if err := m.QMP.Migrate(ctx, "exec:cat > "+shellQuote([]string{path})); err != nil {
		return fmt.Errorf("saving guest state: %w", err)
	}
	for {
		mi, err := m.QMP.QueryMigrate(ctx)
		if err != nil {
			return fmt.Errorf("saving guest state: %w", err)
		}
		switch mi.Status {
		case "completed":
			st, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("saving guest state: %w", err)
			}
			m.log.Info("guest state saved", "path", path, "bytes", st.Size(), "took", time.Since(start).Round(time.Millisecond))
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("saving guest state: migration %s: %s", mi.Status, mi.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("saving guest state: %w", ctx.Err())
		case <-m.exited:
			return m.diedError("while saving its state")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Restore starts a guest from a state file SaveState wrote for the same
// spec (opts.Incoming is set to state) and waits until it runs and its
// agent answers. The guest resumes where it was saved; its console shows
// only what it prints from then on. A file QEMU cannot load ends the
// QEMU process: the error says so, with QEMU's words.
func Restore(ctx context.Context, spec Spec, opts Options, state string) (*Machine, error) {
	opts.Incoming = state
	m, err := Start(ctx, spec, opts)
	if err == nil {
		if err = m.waitRestored(ctx); err != nil {
			m.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("restoring guest state %s: %w", state, err)
	}
	return m, nil
}

// waitRestored waits for the incoming state to load (QEMU then starts
// the vCPUs) and connects the agent, which was running when the state
// was saved.
func (m *Machine) waitRestored(ctx context.Context) error {
	for {
		st, err := m.QMP.QueryStatus(ctx)
		switch {
		case m.Exited():
			return m.diedError("while restoring its state")
		case err != nil:
			return fmt.Errorf("guest %s: restoring its state: %w", m.Spec.Name, err)
		case st.Running:
			m.log.Info("guest state restored", "after", time.Since(m.Started).Round(time.Millisecond))
			agent, err := m.inst.DialAgent(ctx, m.log)
			if err != nil {
				if m.Exited() {
					return m.diedError("while connecting to the agent")
				}
				return fmt.Errorf("guest %s: restored, but its agent did not answer: %w", m.Spec.Name, err)
			}
			m.Agent = agent
			return nil
		case st.Status == "paused":
			// The state was saved from a stopped guest (SaveState stops
			// it), so QEMU keeps the loaded guest paused.
			if err := m.QMP.Cont(ctx); err != nil {
				return fmt.Errorf("guest %s: resuming the restored state: %w", m.Spec.Name, err)
			}
			continue
		case st.Status != "inmigrate" && st.Status != "prelaunch":
			return fmt.Errorf("guest %s: restoring its state: QEMU is %q, not running", m.Spec.Name, st.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("guest %s: restoring its state: %w\n%s", m.Spec.Name, ctx.Err(), strings.TrimSpace(m.diag.String()))
		case <-m.exited:
		case <-time.After(5 * time.Millisecond):
		}
	}
}
