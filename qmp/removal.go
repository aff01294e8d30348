package qmp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// GracefulResult describes a completed device_del.
type GracefulResult struct {
	Requested time.Time // host time device_del was accepted
	Deleted   time.Time // host time DEVICE_DELETED arrived
}

// Graceful removes a device the polite way: device_del, then wait for
// DEVICE_DELETED for that id. With native pciehp the guest sees an
// Attention Button press, waits 5 s, and removes the device while it is
// still present (so pci_dev_set_disconnected is never called).
func Graceful(ctx context.Context, c *Client, id string) (GracefulResult, error) {
	mark := c.EventJournal().Mark()
	if err := c.DeviceDel(ctx, id); err != nil {
		return GracefulResult{}, err
	}
	res := GracefulResult{Requested: time.Now()}
	e, err := c.WaitEvent(ctx, mark, IsDeviceDeleted(id))
	if err != nil {
		return res, fmt.Errorf("graceful removal of %q: guest did not release it: %w", id, err)
	}
	res.Deleted = e.Time
	return res, nil
}

// SurpriseResult describes a host-side surprise removal.
type SurpriseResult struct {
	Device      PCIAddress
	PortID      string     // qdev id of the root port
	Port        PCIAddress // root port address
	SlotControl uint16     // the guest's Slot Control value, restored after the cut
	Stopped     time.Time  // vCPUs paused
	Cut         time.Time  // host time QEMU acknowledged the power-off write (device unrealized)
	Resumed     time.Time  // vCPUs running again
	Deleted     time.Time  // host receive time of DEVICE_DELETED
	// Queues is each virtqueue of the device read while the vCPUs stood
	// for the cut, before the power-off (WatchQueues; nil if not asked).
	// QueuesErr says why they could not be read; the cut went on.
	Queues    []VirtioQueue
	QueuesErr string
}

// PCI Express capability registers used for the slot power cut.
const (
	pciCapabilityList = 0x34
	pciCapIDExp       = 0x10
	pciExpSlotCap     = 0x14
	pciExpSlotCtl     = 0x18
	slotCapPowerCtl   = 0x0002 // Power Controller Present
	slotCapHotPlug    = 0x0040 // Hot-Plug Capable
	// Power Controller Control = off (bit 10) and Power Indicator = off
	// (bits 9:8 = 11b). QEMU's pcie_cap_slot_write_config unplugs the
	// slot's devices synchronously when it sees this transition.
	slotCtlPowerOff = 0x0700
)

// Surprise pulls device id out from under the guest without asking it: the
// host writes "power controller off, indicator off" into the root port's
// Slot Control while the vCPUs are stopped, which makes QEMU unrealize the
// device at once and raise Presence Detect Changed. The guest's Slot
// Control value and its latched CONFIG_ADDRESS are restored before the
// vCPUs resume, so the guest sees only "Card not present" and takes the
// pciehp surprise-removal path (pci_dev_set_disconnected). No device_del is
// sent: that would start pciehp's 5 s Attention Button countdown instead.
//
// It is PrepareSurprise followed by Fire; timed callers prepare early so
// the cut itself costs only the few HMP round trips of Fire.
func Surprise(ctx context.Context, c *Client, id string) (SurpriseResult, error) {
	cut, err := PrepareSurprise(ctx, c, id)
	if err != nil {
		return SurpriseResult{}, err
	}
	return cut.Fire(ctx)
}

// SurpriseCut is a prepared surprise removal: the device's root port and
// the offset of its PCI Express capability are already known.
type SurpriseCut struct {
	c      *Client
	id     string
	res    SurpriseResult
	expCap int
	mark   int // the event journal before the cut (AwaitDeleted)
	// virtio and numVQs: the device's virtio backend, whose queues the cut
	// reads inside its stop (WatchQueues).
	virtio string
	numVQs int
}

// WatchQueues makes the cut read the device's virtqueues inside its
// stop, right before the power-off: the host's own count of requests the
// device holds at the cut (SurpriseResult.Queues), next to what the
// guest's sampler saw. It costs one monitor round trip per queue inside
// the stop. A device that is not virtio, or a QEMU without
// x-query-virtio-status, is an error here and the cut reads nothing.
func (cut *SurpriseCut) WatchQueues(ctx context.Context) error {
	path := VirtioBackendPath(cut.id)
	st, err := cut.c.QueryVirtioStatus(ctx, path)
	if err != nil {
		return fmt.Errorf("virtio queues of %q: %w", cut.id, err)
	}
	if st.NumVQs <= 0 {
		return fmt.Errorf("virtio queues of %q: %s reports %d queues", cut.id, path, st.NumVQs)
	}
	cut.virtio, cut.numVQs = path, st.NumVQs
	return nil
}

// readQueues reads every watched virtqueue; the vCPUs are stopped.
func (cut *SurpriseCut) readQueues(ctx context.Context, res *SurpriseResult) {
	for q := range cut.numVQs {
		vq, err := cut.c.QueryVirtioQueue(ctx, cut.virtio, q)
		if err != nil {
			res.Queues, res.QueuesErr = nil, err.Error()
			return
		}
		res.Queues = append(res.Queues, vq)
	}
}

// PrepareSurprise resolves id's root port through query-pci and finds the
// port's PCI Express capability and hot-plug support. It pauses the vCPUs
// briefly (config cycles must not interleave with the guest's).
func PrepareSurprise(ctx context.Context, c *Client, id string) (*SurpriseCut, error) {
	path, err := c.FindPCI(ctx, id)
	if err != nil {
		return nil, err
	}
	port, ok := path.Port()
	if !ok {
		return nil, fmt.Errorf("surprise removal of %q: device is on a root bus, not behind a PCIe root port; put it on a pcie-root-port", id)
	}
	cut := &SurpriseCut{c: c, id: id}
	cut.res.Device, cut.res.Port, cut.res.PortID = path.Device.Address(), port.Address(), port.QdevID
	err = cut.paused(ctx, func(cfg configSpace) error {
		exp, err := cfg.findCapability(ctx, pciCapIDExp)
		if err != nil {
			return fmt.Errorf("surprise removal of %q: root port %s (%s): %w", id, cut.res.PortID, cut.res.Port, err)
		}
		slotCap, err := cfg.read(ctx, exp+pciExpSlotCap, 4)
		if err != nil {
			return err
		}
		if slotCap&slotCapHotPlug == 0 || slotCap&slotCapPowerCtl == 0 {
			return fmt.Errorf("surprise removal of %q: root port %s has no hot-plug power controller (slot capabilities %#x); do not set power_controller_present=off or hotplug=off on it", id, cut.res.PortID, slotCap)
		}
		cut.expCap = exp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cut, nil
}

// Fire cuts slot power now and waits for DEVICE_DELETED. A SurpriseCut
// fires once.
func (cut *SurpriseCut) Fire(ctx context.Context) (SurpriseResult, error) {
	return cut.fire(ctx, cut.paused)
}

// FireStopped is Fire on a guest whose vCPUs something else stopped (a
// gdbstub at a breakpoint): it neither stops nor resumes them, which
// saves two monitor round trips inside the stop, and it does not wait
// for DEVICE_DELETED, so the caller can resume the guest at once and
// then AwaitDeleted. Resumed is left zero: the caller resumes.
func (cut *SurpriseCut) FireStopped(ctx context.Context) (SurpriseResult, error) {
	res, err := cut.cutPower(ctx, cut.latched)
	res.Resumed = time.Time{}
	return res, err
}

// AwaitDeleted waits for the DEVICE_DELETED that follows FireStopped's
// cut and records it in res.
func (cut *SurpriseCut) AwaitDeleted(ctx context.Context, res *SurpriseResult) error {
	// The unplug is synchronous inside the config write, so DEVICE_DELETED
	// is normally in the journal already.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e, err := cut.c.WaitEvent(wctx, cut.mark, IsDeviceDeleted(cut.id))
	if err != nil {
		return fmt.Errorf("surprise removal of %q: QEMU did not unplug it after the slot power cut: %w", cut.id, err)
	}
	res.Deleted = e.Time
	return nil
}

func (cut *SurpriseCut) fire(ctx context.Context, around func(context.Context, func(configSpace) error) error) (SurpriseResult, error) {
	res, err := cut.cutPower(ctx, around)
	if err != nil {
		return res, err
	}
	return res, cut.AwaitDeleted(ctx, &res)
}

// cutPower writes "power off" into the port's Slot Control inside
// around (the vCPUs stopped) and puts the guest's value back.
func (cut *SurpriseCut) cutPower(ctx context.Context, around func(context.Context, func(configSpace) error) error) (SurpriseResult, error) {
	c, id := cut.c, cut.id
	cut.mark = c.EventJournal().Mark()
	res := cut.res
	err := around(ctx, func(cfg configSpace) error {
		res.Stopped = time.Now()
		ctl, err := cfg.read(ctx, cut.expCap+pciExpSlotCtl, 2)
		if err != nil {
			return err
		}
		res.SlotControl = uint16(ctl)
		if ctl&slotCtlPowerOff == slotCtlPowerOff {
			return fmt.Errorf("surprise removal of %q: slot %s is already powered off (slot control %#x); was the device removed already?", id, res.PortID, ctl)
		}
		// After the Slot Control read, whose select the power-off write
		// reuses: a QMP query does not touch CONFIG_ADDRESS.
		cut.readQueues(ctx, &res)
		// The read left CONFIG_ADDRESS on Slot Control and the vCPUs
		// are stopped: the writes need no select of their own (two
		// monitor round trips fewer while the guest stands still).
		if err := cfg.writeSelected(ctx, cut.expCap+pciExpSlotCtl, 2, ctl|slotCtlPowerOff); err != nil {
			return err
		}
		res.Cut = time.Now()
		// Put the guest's value back: if the guest read "power off" it
		// would log "Slot(N): Already disabled" and skip the removal.
		return cfg.writeSelected(ctx, cut.expCap+pciExpSlotCtl, 2, ctl)
	})
	if !res.Cut.IsZero() {
		res.Resumed = time.Now()
	}
	return res, err
}

// paused runs fn with the vCPUs stopped and the guest's CONFIG_ADDRESS
// latch saved, then restores the latch and resumes the vCPUs (if they were
// running), whatever fn returned and even if ctx has ended: a guest left
// paused would look hung.
func (cut *SurpriseCut) paused(ctx context.Context, fn func(configSpace) error) (err error) {
	c := cut.c
	status, err := c.QueryStatus(ctx)
	if err != nil {
		return err
	}
	if err := c.Stop(ctx); err != nil {
		return err
	}
	defer func() {
		if !status.Running {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if cerr := c.Cont(rctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("resuming guest: %w", cerr))
		}
	}()
	return cut.latched(ctx, fn)
}

// latched runs fn with the guest's CONFIG_ADDRESS latch saved and
// restored after, on a guest that is already stopped.
func (cut *SurpriseCut) latched(ctx context.Context, fn func(configSpace) error) (err error) {
	c := cut.c
	cfg := configSpace{c: c, addr: cut.res.Port}
	saved, err := cfg.readAddressLatch(ctx)
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := cfg.writeAddressLatch(rctx, saved); rerr != nil {
			err = errors.Join(err, fmt.Errorf("restoring the guest's CONFIG_ADDRESS: %w", rerr))
		}
	}()
	return fn(cfg)
}

// configSpace does PCI configuration cycles through the legacy 0xcf8/0xcfc
// ports with HMP i/o commands, as the guest's CPU would.
type configSpace struct {
	c    *Client
	addr PCIAddress
}

var portReply = regexp.MustCompile(`port[bwl]\[0x[0-9a-fA-F]+\] = 0x([0-9a-fA-F]+)`)

// hmpSize maps an access width to HMP's i/o size letter.
func hmpSize(n int) string {
	switch n {
	case 1:
		return "b"
	case 2:
		return "h"
	default:
		return "w"
	}
}

func (cs configSpace) in(ctx context.Context, port, size int) (uint32, error) {
	out, err := cs.c.HMP(ctx, fmt.Sprintf("i /%s %#x", hmpSize(size), port))
	if err != nil {
		return 0, err
	}
	m := portReply.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("qmp: unexpected reply to HMP port read %#x: %q", port, out)
	}
	v, err := strconv.ParseUint(m[1], 16, 32)
	return uint32(v), err
}

func (cs configSpace) out(ctx context.Context, port, size int, val uint32) error {
	out, err := cs.c.HMP(ctx, fmt.Sprintf("o /%s %#x %#x", hmpSize(size), port, val))
	if err != nil {
		return err
	}
	if out != "" {
		return fmt.Errorf("qmp: HMP port write %#x: %q", port, out)
	}
	return nil
}

func (cs configSpace) readAddressLatch(ctx context.Context) (uint32, error) {
	return cs.in(ctx, 0xcf8, 4)
}

func (cs configSpace) writeAddressLatch(ctx context.Context, v uint32) error {
	return cs.out(ctx, 0xcf8, 4, v)
}

func (cs configSpace) select_(ctx context.Context, reg int) error {
	a := uint32(0x80000000) | uint32(cs.addr.Bus)<<16 | uint32(cs.addr.Slot)<<11 |
		uint32(cs.addr.Function)<<8 | uint32(reg&0xfc)
	return cs.out(ctx, 0xcf8, 4, a)
}

func (cs configSpace) read(ctx context.Context, reg, size int) (uint32, error) {
	if err := cs.select_(ctx, reg); err != nil {
		return 0, err
	}
	return cs.in(ctx, 0xcfc+(reg&3), size)
}

func (cs configSpace) write(ctx context.Context, reg, size int, val uint32) error {
	if err := cs.select_(ctx, reg); err != nil {
		return err
	}
	return cs.out(ctx, 0xcfc+(reg&3), size, val)
}

// writeSelected writes reg when CONFIG_ADDRESS already selects it (the
// last access was to the same dword, with the guest stopped since).
func (cs configSpace) writeSelected(ctx context.Context, reg, size int, val uint32) error {
	return cs.out(ctx, 0xcfc+(reg&3), size, val)
}

// findCapability walks the standard capability list for id.
func (cs configSpace) findCapability(ctx context.Context, id uint32) (int, error) {
	ptr, err := cs.read(ctx, pciCapabilityList, 1)
	if err != nil {
		return 0, err
	}
	for i := 0; ptr != 0 && i < 48; i++ { // 48 = max capabilities in 256 bytes
		ptr &^= 3
		capID, err := cs.read(ctx, int(ptr), 1)
		if err != nil {
			return 0, err
		}
		if capID == id {
			return int(ptr), nil
		}
		if ptr, err = cs.read(ctx, int(ptr)+1, 1); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no PCI capability %#x (is it a PCI Express port?)", id)
}
