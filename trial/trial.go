package trial

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/snapshot"
)

// Trial is one run of a scenario on one kernel.
type Trial struct {
	Scenario   scenario.Scenario
	Params     scenario.Params
	KernelName string // for reports: a variant name or a path
	Kernel     string // bzImage
	Initrd     string // yank image that fits the kernel
	// Artifacts is the evidence dir (created 0700). Empty: evidence is
	// kept only in the returned Verdict.
	Artifacts string
	Progress  io.Writer // one line per phase; nil = quiet
	Hooks     Hooks
	// Backend runs the guest: nil is a local QEMU process, a
	// *libvirt.Backend a transient domain on a libvirtd.
	Backend machine.Backend
	// Snapshots, when set, starts the guest from a snapshot saved right
	// before the trigger (made by the first trial that needs it); nil
	// boots every trial cold (-no-snapshot).
	Snapshots *snapshot.Store
}

// Hooks inject faults for yank's own tests (QEMU killed mid-trial, the
// agent going silent). Production callers leave them nil.
type Hooks struct {
	AfterTrigger func(*machine.Machine)
	AfterRemoval func(*machine.Machine)
	// Boot edits the spec of boot attempt n (1, then 2 after a stall).
	Boot func(attempt int, spec *machine.Spec)
	// BootDeadline replaces bootDeadline when set.
	BootDeadline time.Duration
}

// diskID is the disk the standard guest (machine.HotplugGuest) removes.
const diskID = "disk0"

// Run runs one trial. It returns an error only for bad input (nothing was
// started); every failure after that is an INFRA-ERROR verdict, never PASS
// or HANG.
func Run(ctx context.Context, t Trial) (scenario.Verdict, error) {
	if err := t.Scenario.Validate(); err != nil {
		return scenario.Verdict{}, err
	}
	if err := t.Params.Validate(); err != nil {
		return scenario.Verdict{}, fmt.Errorf("scenario %s: %w", t.Scenario.Name, err)
	}
	if err := t.Scenario.DeviceInfo().CheckParams(t.Params.WithDefaults()); err != nil {
		return scenario.Verdict{}, fmt.Errorf("scenario %s: %w", t.Scenario.Name, err)
	}
	for what, p := range map[string]string{"kernel": t.Kernel, "initrd": t.Initrd} {
		if _, err := os.Stat(p); err != nil {
			return scenario.Verdict{}, fmt.Errorf("trial %s: %s %q: %w", t.Scenario.Name, what, p, err)
		}
	}
	if t.Params.Anchor != "" {
		if _, _, _, err := ResolveAnchor(t.Params.Anchor, t.Kernel); err != nil {
			return scenario.Verdict{}, fmt.Errorf("trial %s: %w", t.Scenario.Name, err)
		}
	}
	if t.Artifacts != "" {
		if err := os.MkdirAll(t.Artifacts, 0o700); err != nil {
			return scenario.Verdict{}, fmt.Errorf("artifacts dir: %w", err)
		}
	}
	r, err := newRunner(t)
	if err != nil {
		return scenario.Verdict{}, err
	}
	defer r.close()
	r.run(ctx)
	if err := r.release(ctx); err != nil {
		r.log.Warn("releasing the gdbstub", "err", err)
	}
	return r.finish(), nil
}

// runner holds one trial's state.
type runner struct {
	t    Trial
	p    scenario.Params
	dev  *scenario.Device // the disk's kind (devices.json)
	v    scenario.Verdict
	log  *slog.Logger
	logF *os.File
	// mu guards notes and outcomeMu the outcome: an anchored trial's
	// trigger starts on its own goroutine while the cut waits for the hit.
	mu        sync.Mutex
	outcomeMu sync.Mutex
	notes     []hostNote
	m         *machine.Machine
	bdf       string // guest PCI address of the disk
	disk      string // guest block device name
	trigPID   int
	cut       *qmp.SurpriseCut
	// cutStopped is the host time the vCPUs stopped for the cut (the
	// guest cannot run from then until the cut is done); for a graceful
	// removal, device_del's issue time.
	cutStopped     time.Time
	samplerStopped bool
	samplesEarly   bool // readSamplesEarly ran
	// samples are the sampler's looks, read from the guest's kernel log
	// once the verdict needs them (nil: not read yet).
	samples    []string
	samplesErr error
	armed      *armed // the anchored cut's breakpoint (nil: timed cut)
	atAnchor   bool   // the vCPUs stand at the anchor's breakpoint now
	resumeErr  error  // resuming the guest after the cut at the anchor
	// probes are every look at the guest after the removal, in order
	// (probes.jsonl: what scenario.Decide decided from).
	probes   []scenario.Probe
	windowEv *scenario.WindowEvidence // judged once the guest settled
}

type hostNote struct {
	t   time.Time
	msg string
}

func newRunner(t Trial) (*runner, error) {
	r := &runner{t: t, p: t.Params.WithDefaults(), dev: t.Scenario.DeviceInfo()}
	r.v = scenario.Verdict{
		Scenario: t.Scenario.Name, Kernel: t.KernelName, Params: r.p, Device: r.dev.Name,
		IOTimeout: scenario.Duration(r.dev.Timeout(r.p)), HangAfter: scenario.Duration(t.Scenario.HangAfterFor(r.p)),
		RequestedOffset: scenario.Duration(r.p.Offset), Started: time.Now(), Artifacts: t.Artifacts,
	}
	var w io.Writer = io.Discard
	if t.Artifacts != "" {
		f, err := os.OpenFile(filepath.Join(t.Artifacts, "host.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("artifacts: %w", err)
		}
		r.logF, w = f, f
	}
	r.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: utcTime}))
	return r, nil
}

// utcTime writes slog times like the console log: UTC, microseconds.
func utcTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(machine.TimeFormat))
	}
	return a
}

func (r *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, hostNote{now, msg})
	r.log.Info(msg)
	if r.t.Progress != nil {
		fmt.Fprintf(r.t.Progress, "%s %s/%s@%s: %s\n", now.UTC().Format("15:04:05.000"), r.t.KernelName, r.t.Scenario.Name, r.p.Offset, msg)
	}
}

// infra ends the trial as INFRA-ERROR.
func (r *runner) infra(format string, args ...any) {
	r.decide(scenario.InfraError, fmt.Sprintf(format, args...))
}

func (r *runner) decide(o scenario.Outcome, reason string) {
	r.outcomeMu.Lock()
	defer r.outcomeMu.Unlock()
	if r.v.Outcome != "" {
		return
	}
	r.setOutcome(o, reason)
}

// overrule replaces an earlier verdict: a crash seen after a HANG was
// decided (the HANG's evidence stays in the verdict).
func (r *runner) overrule(o scenario.Outcome, reason string) {
	r.note("verdict %s overruled", r.v.Outcome)
	r.setOutcome(o, reason)
}

func (r *runner) setOutcome(o scenario.Outcome, reason string) {
	r.v.Outcome, r.v.Reason = o, reason
	r.v.Timeline.Decided = time.Now()
	if !r.v.Timeline.Removal.IsZero() {
		r.v.DetectionLatency = scenario.Duration(r.v.Timeline.Decided.Sub(r.v.Timeline.Removal))
	}
	r.note("verdict %s: %s", o, reason)
}

func (r *runner) run(ctx context.Context) {
	if !r.start(ctx) || !r.prepareRemoval(ctx) {
		return
	}
	if r.p.Anchor != "" {
		if !r.arm(ctx) {
			return
		}
		if removed := r.anchoredRemove(ctx); removed != nil {
			r.observe(ctx, removed)
		}
		return
	}
	if !r.trigger(ctx) {
		return
	}
	removed := r.remove(ctx)
	if removed == nil {
		return
	}
	r.observe(ctx, removed)
}

// spec is the trial's guest.
func (r *runner) spec() machine.Spec {
	spec := machine.HotplugGuest(r.t.Scenario.Name, r.t.Kernel, r.t.Initrd)
	spec.CPUs = r.p.CPUs
	args := r.dev.KernelArgs(r.p)
	if r.p.Anchor != "" {
		// The breakpoint's address is System.map's: no randomized base.
		args = append(args, "nokaslr")
	}
	spec.Append = strings.Join(args, " ")
	d := &spec.Disks[0]
	d.Kind = machine.DiskKind(r.dev.Name)
	d.QueueSize, d.NumQueues = r.p.QueueSize, r.p.NumQueues
	d.Throttle.BpsWrite = max(r.p.ThrottleBps, 0)
	return spec
}

// boot boots the guest cold, its logs in logDir.
func (r *runner) boot(ctx context.Context, logDir string) bool {
	spec := r.spec()
	r.v.Timeline.Boot = time.Now()
	if r.t.Backend != nil && r.t.Backend != machine.Local {
		r.note("booting %s with a %s disk on %s", r.t.Kernel, r.dev.Name, r.t.Backend.Name())
	} else {
		r.note("booting %s with a %s disk", r.t.Kernel, r.dev.Name)
	}
	m, err := r.bootOnce(ctx, 1, spec, logDir)
	if errors.Is(err, machine.ErrNotReady) && ctx.Err() == nil {
		// Nothing has been tested yet, so a boot that stalled (seen once
		// in make test, the console silent mid-init) is booted again,
		// once, with the first boot's console kept beside the second's.
		kept := keepStalledConsole(logDir)
		r.note("boot stalled, booting again (once; its console: %s): %v", kept, err)
		r.v.StalledBoot = err.Error()
		r.v.Timeline.Boot = time.Now()
		m, err = r.bootOnce(ctx, 2, spec, logDir)
		if err != nil {
			err = fmt.Errorf("second boot: %w (the first one stalled too, its console: %s)", err, kept)
		}
	}
	if err != nil {
		r.infra("boot failed: %v", err)
		return false
	}
	r.m = m
	r.v.Accel = string(m.Accel)
	r.v.Timeline.Ready = time.Now()
	r.note("guest ready after %s (%s)", r.v.Timeline.Ready.Sub(r.v.Timeline.Boot).Round(time.Millisecond), m.Accel)
	return true
}

// bootDeadline bounds one boot to the ready marker: 3-8 s here under TCG,
// 2 guests at once with a load beside them.
const bootDeadline = 3 * time.Minute

func (r *runner) bootOnce(ctx context.Context, attempt int, spec machine.Spec, logDir string) (*machine.Machine, error) {
	if r.t.Hooks.Boot != nil {
		spec.ExtraArgs = append([]string(nil), spec.ExtraArgs...)
		r.t.Hooks.Boot(attempt, &spec)
	}
	bctx, cancel := context.WithTimeout(ctx, cmp.Or(r.t.Hooks.BootDeadline, bootDeadline))
	defer cancel()
	return machine.Boot(bctx, spec, machine.Options{Logger: r.log, LogDir: logDir, Backend: r.t.Backend})
}

// keepStalledConsole renames a stalled boot's console.log in logDir to
// console-stalled-boot.log, before the next boot writes its own, and
// returns where it is now.
func keepStalledConsole(logDir string) string {
	if logDir == "" {
		return "not kept (no artifacts dir)"
	}
	from, to := filepath.Join(logDir, "console.log"), filepath.Join(logDir, "console-stalled-boot.log")
	if err := os.Rename(from, to); err != nil {
		return fmt.Sprintf("not kept: %v", err)
	}
	return to
}

// guest runs a short shell script through the agent with a deadline.
func (r *runner) guest(ctx context.Context, what, script string, timeout time.Duration) (string, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := r.m.Agent.RunShell(gctx, script)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if !res.Success() {
		return "", fmt.Errorf("%s: exit %d, signal %d: %s%s", what, res.ExitCode, res.Signal, res.Stdout, res.Stderr)
	}
	return string(res.Stdout), nil
}

// setupScript tunes the guest for the trial and prints the disk's name.
// It caps the disk's largest request at what the throttle's drain
// assumes (scenario.MaxRequestBytes; a lower limit stays).
func (r *runner) setupScript(bdf string) string {
	p := r.p
	var sysctl strings.Builder
	fmt.Fprintf(&sysctl, "echo %d > /proc/sys/vm/dirty_ratio\n", p.DirtyRatio)
	fmt.Fprintf(&sysctl, "echo %d > /proc/sys/vm/dirty_background_ratio\n", p.DirtyBackgroundRatio)
	if p.DirtyWritebackCentisecs >= 0 {
		fmt.Fprintf(&sysctl, "echo %d > /proc/sys/vm/dirty_writeback_centisecs\n", p.DirtyWritebackCentisecs)
	}
	return fmt.Sprintf(`set -e
mkdir -p /run/yank
%s
echo %d > /proc/sys/kernel/hung_task_timeout_secs
echo -1 > /proc/sys/kernel/hung_task_warnings
echo 1 > /proc/sys/kernel/sysrq
echo on > /proc/sys/kernel/printk_devkmsg
echo 7 > /proc/sys/kernel/printk
disk=$(%s)
q=/sys/block/$disk/queue/max_sectors_kb
if [ -n "$disk" ] && [ -w "$q" ] && [ "$(cat "$q")" -gt %[4]d ]; then echo %[4]d > "$q"; fi
echo $disk
`, sysctl.String(), p.HungTaskTimeout, machine.BlockDeviceScript(bdf), scenario.MaxRequestBytes/1024)
}

func (r *runner) setup(ctx context.Context) bool {
	path, err := r.m.QMP.FindPCI(ctx, diskID)
	if err != nil {
		r.infra("finding the disk: %v", err)
		return false
	}
	r.bdf = "0000:" + path.Device.Address().String()
	out, err := r.guest(ctx, "guest setup", r.setupScript(r.bdf), 20*time.Second)
	if err != nil {
		r.infra("%v", err)
		return false
	}
	r.disk = strings.TrimSpace(out)
	if r.disk == "" || strings.ContainsAny(r.disk, " \n/") {
		r.infra("guest setup: no single block device under the %s device at %s: %q (is the kernel built with its driver?)", r.dev.Name, r.bdf, out)
		return false
	}
	r.note("guest set up: disk %s at %s", r.disk, r.bdf)
	return true
}

// prepareRemoval reads what a surprise removal needs from the host side
// (after a restore too: it is QEMU's state, not the guest's).
func (r *runner) prepareRemoval(ctx context.Context) bool {
	if r.t.Scenario.Removal != scenario.RemovalSurprise {
		return true
	}
	var err error
	if r.cut, err = qmp.PrepareSurprise(ctx, r.m.QMP, diskID); err != nil {
		r.infra("preparing the surprise removal: %v", err)
		return false
	}
	if r.dev.Driver == virtioDriver {
		if err := r.cut.WatchQueues(ctx); err != nil {
			r.note("the cut will not read the device's queues: %v", err)
		}
	}
	return true
}

// virtioDriver is the guest driver of the devices whose queues QEMU can
// show (devices.json's driver).
const virtioDriver = "virtio-pci"

// Guest scripts of the built-in loads. The holder keeps the disk open so
// dd's close does not flush: the dirty pages stay in the page cache until
// the trigger or del_gendisk writes them back.
func holderScript(disk string) string {
	return fmt.Sprintf("exec sleep 2147483647 < /dev/%s", disk)
}

func bufferedWriteScript(disk string, mb int) string {
	return fmt.Sprintf("dd if=/dev/zero of=/dev/%s bs=1M count=%d 2>&1", disk, mb)
}

func directLoopScript(disk string) string {
	return fmt.Sprintf("while dd if=/dev/zero of=/dev/%s bs=64k count=16 oflag=direct; do :; done", disk)
}

func (r *runner) load(ctx context.Context) bool {
	var err error
	switch r.t.Scenario.IO {
	case scenario.IOBuffered:
		if _, err = r.m.Agent.Exec(ctx, bg(holderScript(r.disk), "/run/yank/holder.log")); err == nil {
			_, err = r.guest(ctx, "buffered write", bufferedWriteScript(r.disk, r.p.WriteMB), 2*time.Minute)
		}
	case scenario.IODirect:
		_, err = r.m.Agent.Exec(ctx, bg(directLoopScript(r.disk), "/run/yank/direct.log"))
	case scenario.IOCommand:
		err = r.userLoad(ctx)
	}
	if err != nil {
		r.infra("starting the %s load: %v", r.t.Scenario.IO, err)
		return false
	}
	r.v.Timeline.LoadDone = time.Now()
	r.note("load %s in place", r.t.Scenario.IO)
	return true
}

func (r *runner) trigger(ctx context.Context) bool {
	var action string
	switch r.t.Scenario.Trigger {
	case scenario.TriggerUnbind:
		action = fmt.Sprintf("echo %s > /sys/bus/pci/drivers/%s/unbind", r.bdf, r.dev.Driver)
	case scenario.TriggerSync:
		action = "sync"
	default:
		action = ":"
	}
	look := lookVars(r.bdf, r.disk, "/run/yank", r.t.Scenario.WindowWant().TriggerIn)
	script := triggerScript(r.t.Scenario.Trigger, action, "/run/yank", "/dev/kmsg", look)
	cmd := bg(script, "/run/yank/trigger.log")
	if r.t.Scenario.Trigger == scenario.TriggerCommand {
		cmd = r.withUserArgv(cmd, "yank-trigger", r.t.Scenario.TriggerArgv)
	}
	mark := r.m.Console.Mark()
	if _, err := r.m.Agent.Exec(ctx, cmd); err != nil {
		r.infra("starting the %s trigger: %v", r.t.Scenario.Trigger, err)
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	e, err := r.m.Console.Wait(wctx, mark, scenario.TriggerMarker)
	if err != nil {
		r.infra("trigger marker %s never reached the console: %v", scenario.TriggerMarker, err)
		return false
	}
	r.v.Timeline.Trigger = e.Time
	pid, ok := scenario.MarkerPID(e.Item)
	if !ok {
		r.infra("trigger marker without a pid: %q", e.Item)
		return false
	}
	r.trigPID = pid
	r.note("trigger %s started in the guest (pid %d)", r.t.Scenario.Trigger, r.trigPID)
	if r.t.Hooks.AfterTrigger != nil {
		r.t.Hooks.AfterTrigger(r.m)
	}
	return true
}

// startSampler starts the in-guest sampler (before a snapshot is saved,
// so that a restored guest's first look is the one it was saved with).
func (r *runner) startSampler(ctx context.Context) bool {
	if _, err := r.m.Agent.Exec(ctx, bg(samplerScript(r.bdf, r.disk, r.t.Scenario.WindowWant().TriggerIn), "/run/yank/sampler.log")); err != nil {
		r.infra("starting the guest sampler: %v", err)
		return false
	}
	// Its first look is the guest's state before the trigger; a snapshot
	// saved before that look would have each restored trial take its own.
	if _, err := r.guest(ctx, "waiting for the sampler's first look", "n=0; while [ ! -e /run/yank/sampler.ready ]; do [ $n -lt 500 ] || exit 1; sleep 0.02; n=$((n+1)); done", 15*time.Second); err != nil {
		r.infra("%v", err)
		return false
	}
	return true
}

// stopSampler asks the in-guest sampler to end (bounded: the agent may be
// gone, and the sampler stops by itself after samplerLimit looks).
func (r *runner) stopSampler(ctx context.Context) {
	if r.m == nil || r.samplerStopped {
		return
	}
	r.samplerStopped = true
	if _, err := r.guest(ctx, "stopping the sampler", "touch /run/yank/sampler.stop", 3*time.Second); err != nil {
		r.log.Warn("sampler not stopped", "err", err)
	}
}

// removalState reports a graceful removal's completion. Its fields are
// written before done is closed and read only after.
type removalState struct {
	done    chan struct{}
	err     error
	deleted time.Time
}

// finished reports whether the removal completed, and its error.
func (rs *removalState) finished() (bool, error) {
	select {
	case <-rs.done:
		return true, rs.err
	default:
		return false, nil
	}
}

// remove removes the disk at the planned moment, Offset after T0 (an
// anchored cut is anchoredRemove's).
func (r *runner) remove(ctx context.Context) *removalState {
	rs := &removalState{done: make(chan struct{})}
	at := r.v.Timeline.Trigger.Add(r.p.Offset)
	select {
	case <-time.After(time.Until(at)):
	case <-ctx.Done():
		r.infra("cancelled before the removal: %v", ctx.Err())
		return nil
	}
	if !r.fire(ctx, rs) {
		return nil
	}
	r.afterRemoval()
	return rs
}

// afterRemoval records the cut's offset after T0 and runs the hook.
func (r *runner) afterRemoval() {
	r.v.AchievedOffset = scenario.Duration(r.v.Timeline.Removal.Sub(r.v.Timeline.Trigger))
	if r.t.Hooks.AfterRemoval != nil {
		r.t.Hooks.AfterRemoval(r.m)
	}
}

// fire removes the disk now.
func (r *runner) fire(ctx context.Context, rs *removalState) bool {
	switch r.t.Scenario.Removal {
	case scenario.RemovalSurprise:
		var res qmp.SurpriseResult
		var err error
		if r.atAnchor {
			// The gdbstub holds the vCPUs: cut, let the guest go at once,
			// then wait for QEMU's DEVICE_DELETED.
			res, err = r.cut.FireStopped(ctx)
			r.resumeAtAnchor(ctx)
			if err == nil {
				err = r.cut.AwaitDeleted(ctx, &res)
			}
		} else {
			res, err = r.cut.Fire(ctx)
		}
		if res.Cut.IsZero() {
			r.infra("surprise removal failed: %v", err)
			return false
		}
		r.v.Timeline.Removal = res.Cut
		r.cutStopped = res.Stopped
		r.v.Removal = &scenario.RemovalInfo{Kind: "surprise", Port: res.PortID, Stopped: res.Stopped, Issued: res.Cut, Deleted: res.Deleted, Resumed: res.Resumed,
			QueuesError: res.QueuesErr}
		for _, q := range res.Queues {
			r.v.Removal.Queues = append(r.v.Removal.Queues, scenario.QueueAtCut{Index: q.Index, InUse: q.InUse})
		}
		rs.err, rs.deleted = err, res.Deleted
		close(rs.done)
		if err != nil {
			r.infra("surprise removal: %v", err)
			return false
		}
		if r.atAnchor {
			r.note("slot power cut on %s (%s after the anchor's stop)%s", res.PortID, res.Cut.Sub(r.v.Anchor.HitHost).Round(time.Millisecond), queuesAtCut(r.v.Removal))
		} else {
			r.note("slot power cut on %s (vCPUs paused %s)%s", res.PortID, res.Resumed.Sub(res.Stopped).Round(time.Millisecond), queuesAtCut(r.v.Removal))
		}
	case scenario.RemovalGraceful:
		issued := time.Now()
		r.v.Timeline.Removal, r.cutStopped = issued, issued
		r.v.Removal = &scenario.RemovalInfo{Kind: "graceful", Stopped: issued, Issued: issued}
		// Deleted is copied into the verdict by observe, after done.
		go func() {
			defer close(rs.done)
			res, err := qmp.Graceful(ctx, r.m.QMP, diskID)
			rs.err, rs.deleted = err, res.Deleted
		}()
		r.note("device_del %s sent", diskID)
	}
	return true
}

// queuesAtCut says what the device held at the cut, for the timeline.
func queuesAtCut(ri *scenario.RemovalInfo) string {
	switch {
	case ri.QueuesError != "":
		return "; its queues unread: " + ri.QueuesError
	case ri.Queues == nil:
		return ""
	}
	var per []string
	for _, q := range ri.Queues {
		per = append(per, fmt.Sprintf("%d: %d", q.Index, q.InUse))
	}
	return fmt.Sprintf("; the device held %d requests (queue %s)", ri.Held(), strings.Join(per, ", "))
}

// triggerScript is the trigger's guest script (run with the user's argv
// as its positional parameters for trigger "command"). echo is a shell
// builtin, so the task doing an unbind write is this shell, whose pid the
// probe watches. The script waits (up to 10 s) for the sampler's first
// look, so even a cut at +0s has the guest's state before it on record.
// For a command, a child shell marks T0 with its own pid and execs the
// argv, which is never pasted into the script, so the task the probes
// watch is the user's command. dir is the trial's guest dir and kmsg the
// kernel log (parameters for the unit test; >> so that a plain file
// collects every line, as /dev/kmsg does).
//
// Right before T0 the script takes look 0 (lookScript; vars from
// lookVars): the I/O and device state just before the trigger starts.
func triggerScript(trigger scenario.Trigger, action, dir, kmsg, vars string) string {
	mark0 := fmt.Sprintf(`echo $$ > %s/trigger.pid
echo "%s trigger=%s pid=$$" >> %s`, dir, scenario.TriggerMarker, trigger, kmsg)
	body := mark0 + "\n" + action
	if trigger == scenario.TriggerCommand {
		body = "sh -c '" + strings.ReplaceAll(mark0, "'", `'\''`) + `; exec "$@"' yank-trigger "$@"`
	}
	return fmt.Sprintf(`n=0; while [ ! -e %s/sampler.ready ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n+1)); done
%s
%s
%s
echo "YANK-T1 rc=$?" >> %s`, dir, vars, lookScript(kmsg), body, kmsg)
}

// userEnv is the environment of a scenario's own trigger and load: what
// they need to find the disk without yank pasting anything into them.
func (r *runner) userEnv() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "YANK_DEV=/dev/" + r.disk, "YANK_DISK=" + r.disk, "YANK_BDF=" + r.bdf, "YANK_DRIVER=" + r.dev.Driver}
}

// withUserArgv hands a scenario's argv to a yank script as its positional
// parameters ($0 is name) and gives it the user's environment.
func (r *runner) withUserArgv(c guestagent.Cmd, name string, argv []string) guestagent.Cmd {
	c.Args = append(c.Args, append([]string{name}, argv...)...)
	c.Env = r.userEnv()
	return c
}

// userLoad runs the scenario's load_argv: to completion (2 min at most,
// exit 0 required), or left running in the background.
func (r *runner) userLoad(ctx context.Context) error {
	argv := r.t.Scenario.LoadArgv
	if r.t.Scenario.LoadBackground {
		if _, err := r.m.Agent.Exec(ctx, r.withUserArgv(bg(`exec "$@"`, "/run/yank/load.log"), "yank-load", argv)); err != nil {
			return err
		}
		// Give the load its start: the trigger follows at once, and a
		// window that wants I/O outstanding would miss a load still
		// forking. Up to 3 s for a request in flight on the disk; a load
		// that never shows one is noted, and the window judges the rest.
		out, err := r.guest(ctx, "waiting for the load's I/O", fmt.Sprintf(`n=0; while [ $n -lt 60 ]; do read a b < /sys/block/%s/inflight; [ "$a$b" != 00 ] && { echo busy; exit 0; }; sleep 0.05; n=$((n+1)); done; echo idle`, r.disk), 10*time.Second)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "busy" {
			r.note("the background load put no request in flight on %s within 3s", r.disk)
		}
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := r.m.Agent.Run(lctx, guestagent.Cmd{Path: argv[0], Args: argv[1:], Env: r.userEnv(), CaptureOutput: true})
	if err != nil {
		return fmt.Errorf("load_argv %q: %w", argv, err)
	}
	if !res.Success() {
		return fmt.Errorf("load_argv %q: exit %d, signal %d: %s%s", argv, res.ExitCode, res.Signal, res.Stdout, res.Stderr)
	}
	return nil
}

// bg runs script in the guest without capturing output (it may never end).
func bg(script, log string) guestagent.Cmd { return guestagent.Background(script, log) }
