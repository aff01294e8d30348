package scenario

import (
	"github.com/yank-dev/yank/anchor"

	"cmp"
	"errors"
	"fmt"
	"time"
)

// Params are a trial's knobs. Zero values take the defaults of the recipe
// that reproduced the del_gendisk hang (docs/DESIGN.md): a 4-entry single queue
// behind a 2 MiB/s write throttle, 48 MiB of dirty pages held back from
// background writeback, and a 1 s hung-task timeout.
type Params struct {
	// Offset is the removal time after the trigger starts in the guest,
	// or, with Anchor, the delay after the anchor's hit.
	Offset time.Duration
	// Anchor, when set, is an anchored cut (anchor.Parse): a breakpoint
	// at this kernel function, armed before the trigger; the removal
	// fires Offset after its hit ("" cuts at Offset after T0).
	Anchor string
	// AnchorBudget: how long after T0 the anchor may take to be hit
	// before the trial is UNREACHED (default 20 s).
	AnchorBudget time.Duration

	CPUs        int   // guest vCPUs (default 2: the writer must run beside pciehp for surprise-io to race)
	QueueSize   int   // virtqueue size (default 4)
	NumQueues   int   // default 1
	ThrottleBps int64 // write bytes/s (default 2 MiB/s); -1 = unthrottled
	WriteMB     int   // buffered/direct write size (default 48)

	DirtyRatio              int // vm.dirty_ratio (default 90)
	DirtyBackgroundRatio    int // vm.dirty_background_ratio (default 80)
	DirtyWritebackCentisecs int // vm.dirty_writeback_centisecs (default 0 = periodic writeback off); -1 keeps the kernel's

	HungTaskTimeout int // kernel.hung_task_timeout_secs (default 1: khungtaskd's report on a HANG then comes within about a second of the verdict)

	// IOTimeout is the device driver's request timeout, for devices that
	// have one (Device.IOTimeout; nvme: nvme_core.io_timeout, default
	// 5 s, shorter than the kernel's 30 s so a recovery shows within a
	// trial). 0 takes the device's default; HANG waits for the stall to
	// outlast it (Device.HangAfter).
	IOTimeout time.Duration

	// StallWindow: a task in D state with no block-layer progress for this
	// long is a hang (default 1 s).
	StallWindow time.Duration
	// Settle: how long everything must stay quiet (no D tasks, device gone)
	// to call a PASS (default 500 ms).
	Settle time.Duration
	// Budget: after the removal, how long to wait for PASS or HANG before
	// giving up with INFRA-ERROR (default 90 s; a graceful removal flushes
	// all dirty data through the throttle first).
	Budget time.Duration
	// ProbeInterval between the starts of two guest probes (default 150 ms).
	ProbeInterval time.Duration
	// RemovalProof: how long after the removal the guest may take to log
	// pciehp's removal path ("Card not present", or the Attention Button's
	// "Powering off") before the trial is INFRA-ERROR (default 5 s).
	RemovalProof time.Duration
	// RecoveredAfter: the shortest stall a RECOVERED verdict reports
	// (default 3 s). A removal pauses its waiters for a second or so
	// (pciehp's 1 s sleep after powering the slot off): a stall that ends
	// sooner is part of a PASS, not a recovery. It is independent of
	// StallWindow, which only says how soon a stall that lasts is a HANG.
	RecoveredAfter time.Duration
}

func (p Params) WithDefaults() Params {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&p.CPUs, 2)
	def(&p.QueueSize, 4)
	def(&p.NumQueues, 1)
	def(&p.WriteMB, 48)
	def(&p.DirtyRatio, 90)
	def(&p.DirtyBackgroundRatio, 80)
	def(&p.HungTaskTimeout, 1)
	if p.ThrottleBps == 0 {
		p.ThrottleBps = 2 << 20
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&p.StallWindow, time.Second}, {&p.Settle, 500 * time.Millisecond}, {&p.Budget, 90 * time.Second}, {&p.ProbeInterval, 150 * time.Millisecond}, {&p.RemovalProof, 5 * time.Second}, {&p.RecoveredAfter, 3 * time.Second}, {&p.AnchorBudget, 20 * time.Second}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return p
}

// MaxRequestBytes is the largest write the guest sends: Linux's default
// max_sectors (BLK_DEF_MAX_SECTORS_CAP, 2560 sectors, in both 6.1 and
// 6.12; virtio-blk sets no lower limit). The trial's setup caps the
// disk's max_sectors_kb at it, so a kernel with a larger default cannot
// outlast ThrottleDrain.
const MaxRequestBytes = 2560 * 512

// ThrottleDrain is how long the write throttle may hold back completions
// while the device is present: every request the queue holds, at its
// largest, at the throttle's rate (4 x 1.25 MiB at 2 MiB/s: 2.5 s). On
// stock-6.12's graceful-io it measured up to 1.81 s with no write
// completing (2026-12-07), which the 1 s stall window had read as a HANG.
// Zero when unthrottled.
func (p Params) ThrottleDrain() time.Duration {
	p = p.WithDefaults()
	if p.ThrottleBps <= 0 {
		return 0
	}
	return time.Duration(float64(p.QueueSize*MaxRequestBytes) / float64(p.ThrottleBps) * float64(time.Second))
}

// Validate names the first bad knob and what to do about it.
func (p Params) Validate() error {
	var errs []error
	if p.Anchor != "" {
		if _, err := anchor.Parse(p.Anchor); err != nil {
			errs = append(errs, err)
		}
		if p.Offset < 0 || p.Offset > MaxAnchorDelay {
			errs = append(errs, fmt.Errorf("delay %s after anchor %s: want 0s to %s", p.Offset, p.Anchor, MaxAnchorDelay))
		}
	} else if err := checkOffset(p.Offset); err != nil {
		errs = append(errs, err)
	}
	if p.AnchorBudget < 0 || p.AnchorBudget > 10*time.Minute {
		errs = append(errs, fmt.Errorf("anchor budget %s: want 0 (the default, 20s) up to 10m", p.AnchorBudget))
	}
	if p.QueueSize < 0 || p.QueueSize&(p.QueueSize-1) != 0 || p.QueueSize > 1024 {
		errs = append(errs, fmt.Errorf("queue size %d: want a power of two up to 1024", p.QueueSize))
	}
	if p.CPUs < 0 || p.CPUs > 8 {
		errs = append(errs, fmt.Errorf("cpus %d: want 1 to 8", p.CPUs))
	}
	if p.NumQueues < 0 || p.NumQueues > 16 {
		errs = append(errs, fmt.Errorf("num-queues %d: want 1 to 16", p.NumQueues))
	}
	if p.WriteMB < 0 || p.WriteMB > 400 {
		errs = append(errs, fmt.Errorf("write size %d MiB: want 1 to 400 (the guest has 512 MiB)", p.WriteMB))
	}
	for name, v := range map[string]int{"dirty_ratio": p.DirtyRatio, "dirty_background_ratio": p.DirtyBackgroundRatio} {
		if v < 0 || v > 100 {
			errs = append(errs, fmt.Errorf("vm.%s %d: want 0 to 100", name, v))
		}
	}
	if p.HungTaskTimeout < 0 {
		errs = append(errs, fmt.Errorf("hung task timeout %d: want seconds >= 1", p.HungTaskTimeout))
	}
	if p.IOTimeout < 0 {
		errs = append(errs, fmt.Errorf("io-timeout %s: want 0 (the device's default) or a positive number of seconds", p.IOTimeout))
	}
	if p.StallWindow < 0 || p.Budget < 0 || p.Settle < 0 || p.ProbeInterval < 0 || p.RemovalProof < 0 {
		errs = append(errs, errors.New("stall window, settle, budget, probe interval and removal proof must not be negative"))
	}
	if p.RecoveredAfter < 0 || p.RecoveredAfter > 10*time.Minute {
		errs = append(errs, fmt.Errorf("recovered-after %s: want 0 (the default, 3s) up to 10m", p.RecoveredAfter))
	}
	if p.ProbeInterval != 0 && (p.ProbeInterval < 20*time.Millisecond || p.ProbeInterval > 5*time.Second) {
		errs = append(errs, fmt.Errorf("probe interval %s: want 20ms to 5s", p.ProbeInterval))
	}
	if d := p.WithDefaults(); p.StallWindow != 0 && d.StallWindow < time.Duration(minStallProbes-1)*d.ProbeInterval {
		errs = append(errs, fmt.Errorf("stall window %s: want at least %d probe intervals (%s) so that %d probes see the stall", d.StallWindow, minStallProbes-1, time.Duration(minStallProbes-1)*d.ProbeInterval, minStallProbes))
	}
	return errors.Join(errs...)
}

// Detection holds the verdict-timing knobs every command and the suites
// let a user set (0: the default).
type Detection struct {
	StallWindow, Settle, ProbeInterval, RecoveredAfter time.Duration
}

// Apply sets the knobs that are given on p.
func (d Detection) Apply(p Params) Params {
	p.StallWindow = cmp.Or(d.StallWindow, p.StallWindow)
	p.Settle = cmp.Or(d.Settle, p.Settle)
	p.ProbeInterval = cmp.Or(d.ProbeInterval, p.ProbeInterval)
	p.RecoveredAfter = cmp.Or(d.RecoveredAfter, p.RecoveredAfter)
	return p
}

// Check validates the knobs as a trial would (Params.Validate).
func (d Detection) Check() error { return d.Apply(Params{}).Validate() }
