package trial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/snapshot"
)

// snapshotFormat names what a snapshot holds and how yank prepares the
// guest before saving it; part of every key.
const snapshotFormat = "yank-snapshot-1"

// start brings the guest to its trigger: restored from the trial's
// snapshot when snapshots are on, else booted cold, set up and loaded. A
// snapshot that cannot be made or restored falls back to a cold boot;
// the verdict's Start says which it was and why.
func (r *runner) start(ctx context.Context) bool {
	fallback := r.snapshotsOff()
	if r.t.Snapshots != nil && fallback == "" {
		ok, why := r.startFromSnapshot(ctx)
		switch {
		case ok:
			return true
		case r.v.Outcome != "": // an INFRA-ERROR on the way (boot failed, cancelled)
			return false
		case r.m != nil:
			// The maker's guest could not be saved but runs on, set up
			// and loaded: the trial goes on from it.
			r.v.Start = &scenario.Start{Kind: scenario.StartCold, Fallback: why, Took: scenario.Duration(r.v.Timeline.LoadDone.Sub(r.v.Timeline.Boot))}
			r.note("starting cold: %s", why)
			return true
		}
		fallback = why
	}
	if fallback != "" {
		r.note("starting cold: %s", fallback)
	}
	if !r.boot(ctx, r.t.Artifacts) || !r.setup(ctx) || !r.load(ctx) || !r.startSampler(ctx) {
		return false
	}
	r.v.Start = &scenario.Start{Kind: scenario.StartCold, Fallback: fallback, Took: scenario.Duration(r.v.Timeline.LoadDone.Sub(r.v.Timeline.Boot))}
	return true
}

// snapshotsOff says why this trial cannot start from a snapshot it was
// given ("": it can). No Snapshots at all is no fallback: the user asked
// for cold boots.
func (r *runner) snapshotsOff() string {
	if r.t.Snapshots != nil && r.t.Backend != nil && r.t.Backend != machine.Local {
		return "the libvirt backend does not save guest states yet"
	}
	return ""
}

// startFromSnapshot restores the trial's snapshot, making it first if
// need be. It returns false with the reason to boot cold instead, or
// false with the verdict decided (INFRA-ERROR).
func (r *runner) startFromSnapshot(ctx context.Context) (bool, string) {
	key, err := r.snapshotKey()
	if err != nil {
		return false, fmt.Sprintf("no snapshot key: %v", err)
	}
	e, made, err := r.t.Snapshots.Get(ctx, key, r.makeSnapshot)
	switch {
	case r.v.Outcome != "":
		return false, ""
	case err != nil:
		return false, fmt.Sprintf("snapshot %s not made: %v", key, err)
	case e.Meta.Refused != "":
		return false, fmt.Sprintf("QEMU cannot save this guest: %s", e.Meta.Refused)
	}
	copyFile(e.Console(), r.artifact("snapshot-console.log"))
	if err := r.restore(ctx, e); err != nil {
		if ctx.Err() != nil {
			r.infra("cancelled while restoring snapshot %s: %v", key, ctx.Err())
			return false, ""
		}
		// A state that does not restore is dropped: the next trial makes
		// it afresh.
		if rerr := r.t.Snapshots.Remove(key); rerr != nil {
			r.log.Warn("snapshot not removed", "key", key, "err", rerr)
		}
		return false, fmt.Sprintf("snapshot %s did not restore (removed from the cache): %v", key, err)
	}
	r.v.Start = &scenario.Start{Kind: scenario.StartSnapshot, Snapshot: key, Made: made, Took: scenario.Duration(r.v.Timeline.LoadDone.Sub(r.v.Timeline.Boot))}
	return true, ""
}

// makeSnapshot is the store's maker: a cold boot, set up and loaded as
// for a cold trial, saved into dir. A guest QEMU will not save (a device
// that blocks migration) is recorded as refused; either way a guest that
// was not saved keeps running in r.m for the trial to go on from.
func (r *runner) makeSnapshot(ctx context.Context, dir string) (snapshot.Meta, error) {
	r.note("making snapshot %s", filepath.Base(dir))
	start := time.Now()
	if !r.boot(ctx, r.t.Artifacts) || !r.setup(ctx) || !r.load(ctx) || !r.startSampler(ctx) {
		return snapshot.Meta{}, errors.New(r.v.Reason)
	}
	console := r.m.Paths.Console
	e := snapshot.Entry{Dir: dir}
	err := r.m.SaveState(ctx, e.State())
	var qerr *qmp.Error
	if errors.As(err, &qerr) && qerr.Command == "migrate" {
		return snapshot.Meta{Kernel: r.t.Kernel, Initrd: r.t.Initrd, Refused: qerr.Desc}, nil
	}
	if err != nil {
		return snapshot.Meta{}, err
	}
	copyFile(console, e.Console())
	r.m.Close()
	r.m = nil
	// The restored guest's logs take console.log and qemu.log.
	for _, f := range []string{"console.log", "qemu.log"} {
		if r.t.Artifacts != "" {
			os.Rename(r.artifact(f), r.artifact("snapshot-"+f))
		}
	}
	took := time.Since(start)
	r.note("snapshot saved after %s", took.Round(time.Millisecond))
	return snapshot.Meta{Kernel: r.t.Kernel, Initrd: r.t.Initrd, Took: took,
		Facts: map[string]string{"disk": r.disk, "bdf": r.bdf}}, nil
}

// restore starts the trial's guest from e's state.
func (r *runner) restore(ctx context.Context, e snapshot.Entry) error {
	r.v.Timeline.Boot = time.Now()
	r.note("restoring snapshot %s", e.Meta.Key)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, err := machine.Restore(rctx, r.spec(), machine.Options{Logger: r.log, LogDir: r.t.Artifacts, Backend: r.t.Backend}, e.State())
	if err != nil {
		return err
	}
	r.m = m
	r.v.Accel = string(m.Accel)
	r.disk, r.bdf = e.Meta.Facts["disk"], e.Meta.Facts["bdf"]
	if r.disk == "" || r.bdf == "" {
		m.Close()
		r.m = nil
		return fmt.Errorf("snapshot %s records no disk", e.Meta.Key)
	}
	now := time.Now()
	r.v.Timeline.Ready, r.v.Timeline.LoadDone = now, now
	r.note("guest restored after %s: disk %s at %s, load %s in place", now.Sub(r.v.Timeline.Boot).Round(time.Millisecond), r.disk, r.bdf, r.t.Scenario.IO)
	return nil
}

// snapshotKey digests everything that shapes the guest at the trigger:
// QEMU, its command line, the kernel and image, and the guest scripts of
// setup and load (with the disk's names as placeholders).
func (r *runner) snapshotKey() (string, error) {
	spec := r.spec().WithDefaults()
	accel, err := machine.ResolveAccel(spec.Accel, func() (bool, error) { return machine.KVMUsable(), nil })
	if err != nil {
		return "", err
	}
	qemu, err := exec.LookPath(spec.QEMU)
	if err != nil {
		return "", err
	}
	var digests []string
	for _, f := range []string{qemu, spec.Kernel, spec.Initrd} {
		d, err := snapshot.FileDigest(f)
		if err != nil {
			return "", err
		}
		digests = append(digests, d)
	}
	args := spec.Args(machine.Paths{Dir: "/run", QMP: "/run/qmp.sock", Agent: "/run/qga.sock", Console: "/run/console.log", QEMULog: "/run/qemu.log", PIDFile: "/run/qemu.pid"}, accel)
	const disk, bdf = "$DISK", "$BDF"
	sc := r.t.Scenario
	prep := map[string]any{
		"setup": r.setupScript(bdf), "io": sc.IO, "holder": holderScript(disk),
		"write": bufferedWriteScript(disk, r.p.WriteMB), "direct": directLoopScript(disk),
		"load_argv": sc.LoadArgv, "load_background": sc.LoadBackground,
		"sampler": samplerScript(bdf, disk, sc.WindowWant().TriggerIn),
	}
	return snapshot.Key(snapshotFormat, digests, args, prep)
}

func (r *runner) artifact(name string) string {
	if r.t.Artifacts == "" {
		return ""
	}
	return filepath.Join(r.t.Artifacts, name)
}

// copyFile copies src to dst, best effort (evidence, not the verdict).
func copyFile(src, dst string) {
	if src == "" || dst == "" {
		return
	}
	in, err := os.Open(src)
	if err != nil {
		return
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	defer out.Close()
	io.Copy(out, in)
}
