package qmp

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/yank-dev/yank/qmp/qmptest"
)

// The surprise cut's bookkeeping against a fake monitor that emulates the
// port I/O it does (the real cut: machine's and trial's e2e tests).

// portGuest is a guest's PCI config mechanism #1 as HMP port commands
// see it: CONFIG_ADDRESS, and Slot Control of the root port at 00:02.0
// with its PCI Express capability at 0x40. Powering the slot off sends
// DEVICE_DELETED, as QEMU's pcie_cap_slot_write_config does.
type portGuest struct {
	latch   uint32
	slotCtl uint32
	running bool
	writes  []string // Slot Control values written, in order
	// queueReads: when each x-query-virtio-queue-status came, as
	// "running=<bool> writes=<n>"; queueErr makes them fail.
	queueReads []string
	queueErr   bool
}

var hmpIO = regexp.MustCompile(`^([io]) /([bhw]) (0x[0-9a-f]+)(?: (0x[0-9a-f]+))?$`)

func (g *portGuest) answer(w *qmptest.Conn, cmd qmptest.Command) {
	switch cmd.Execute {
	case "query-status":
		w.Return(cmd, map[string]any{"running": g.running, "status": map[bool]string{true: "running", false: "paused"}[g.running]})
		return
	case "stop":
		g.running = false
	case "cont":
		g.running = true
	case "x-query-virtio-status":
		w.Return(cmd, map[string]any{"name": "virtio-scsi", "device-id": 8, "num-vqs": 3})
		return
	case "x-query-virtio-queue-status":
		var a struct{ Queue int }
		json.Unmarshal(cmd.Arguments, &a)
		g.queueReads = append(g.queueReads, fmt.Sprintf("running=%v writes=%d", g.running, len(g.writes)))
		if g.queueErr {
			w.Error(cmd, "GenericError", "Invalid virtqueue number")
			return
		}
		w.Return(cmd, map[string]any{"queue-index": a.Queue, "inuse": a.Queue * 2, "last-avail-idx": 7, "used-idx": 7 - a.Queue*2})
		return
	case "human-monitor-command":
		var a struct {
			Line string `json:"command-line"`
		}
		json.Unmarshal(cmd.Arguments, &a)
		m := hmpIO.FindStringSubmatch(a.Line)
		if m == nil {
			w.Return(cmd, "unknown command: "+a.Line)
			return
		}
		port, _ := strconv.ParseUint(m[3], 0, 32)
		var val uint64
		if m[1] == "o" {
			val, _ = strconv.ParseUint(m[4], 0, 32)
		}
		slotCtlSelected := g.latch == 0x80000000|2<<11|0x58
		switch {
		case m[1] == "i" && port == 0xcf8:
			w.Return(cmd, fmt.Sprintf("portl[0x0cf8] = 0x%08x\r\n", g.latch))
		case m[1] == "o" && port == 0xcf8:
			g.latch = uint32(val)
			w.Return(cmd, "")
		case m[1] == "i" && port == 0xcfc && slotCtlSelected:
			w.Return(cmd, fmt.Sprintf("portw[0x0cfc] = 0x%04x\r\n", g.slotCtl))
		case m[1] == "o" && port == 0xcfc && slotCtlSelected:
			if uint32(val)&slotCtlPowerOff == slotCtlPowerOff && g.slotCtl&slotCtlPowerOff != slotCtlPowerOff {
				w.Event("DEVICE_DELETED", map[string]string{"device": "disk0", "path": "/machine/peripheral/disk0"})
			}
			g.slotCtl = uint32(val)
			g.writes = append(g.writes, fmt.Sprintf("%#x", val))
			w.Return(cmd, "")
		default:
			w.Return(cmd, fmt.Sprintf("port %s not emulated (latch %#x)", a.Line, g.latch))
		}
		return
	}
	w.Return(cmd, nil)
}

func testCut(c *Client) *SurpriseCut {
	cut := &SurpriseCut{c: c, id: "disk0", expCap: 0x40}
	cut.res.Port, cut.res.PortID = PCIAddress{Slot: 2}, "rp0"
	return cut
}

// A timed cut stops the guest, powers the slot off, and gives the guest
// its CONFIG_ADDRESS and Slot Control back before it runs again.
func TestFireRestoresTheGuest(t *testing.T) {
	g := &portGuest{latch: 0x80001234, slotCtl: 0x02f1, running: true}
	f := qmptest.Start(t, g.answer)
	c := dialFake(t, f)
	res, err := testCut(c).Fire(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if g.latch != 0x80001234 || g.slotCtl != 0x02f1 || !g.running {
		t.Fatalf("guest left with latch %#x, slot control %#x, running %v", g.latch, g.slotCtl, g.running)
	}
	if !slices.Equal(g.writes, []string{"0x7f1", "0x2f1"}) {
		t.Fatalf("slot control writes %v, want power off then the guest's value", g.writes)
	}
	if res.SlotControl != 0x02f1 || res.Stopped.IsZero() || res.Cut.Before(res.Stopped) || res.Resumed.Before(res.Cut) || res.Deleted.IsZero() {
		t.Fatalf("result %+v", res)
	}
}

// At a breakpoint (FireStopped) the vCPUs are the gdbstub's: no stop, no
// cont, and Resumed is left to the caller.
func TestFireStoppedLeavesTheVCPUsAlone(t *testing.T) {
	g := &portGuest{latch: 0x80000010, slotCtl: 0x02f1}
	f := qmptest.Start(t, g.answer)
	c := dialFake(t, f)
	cut := testCut(c)
	res, err := cut.FireStopped(ctxT(t))
	if err == nil {
		err = cut.AwaitDeleted(ctxT(t), &res)
	}
	if err != nil {
		t.Fatal(err)
	}
	if g.latch != 0x80000010 || g.slotCtl != 0x02f1 || g.running || !res.Resumed.IsZero() || res.Cut.IsZero() {
		t.Fatalf("guest latch %#x slot control %#x running %v; result %+v", g.latch, g.slotCtl, g.running, res)
	}
	for _, cmd := range f.Commands() {
		if cmd.Execute == "stop" || cmd.Execute == "cont" {
			t.Fatalf("FireStopped sent %s", cmd.Execute)
		}
	}
}

// A slot already off is refused, and the guest still gets its latch
// back and runs again.
func TestFireOnAPoweredOffSlotRestoresTheGuest(t *testing.T) {
	g := &portGuest{latch: 0x80004321, slotCtl: 0x07f1, running: true}
	f := qmptest.Start(t, g.answer)
	c := dialFake(t, f)
	_, err := testCut(c).Fire(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "already powered off") {
		t.Fatalf("got %v", err)
	}
	if g.latch != 0x80004321 || !g.running || len(g.writes) != 0 {
		t.Fatalf("guest left with latch %#x, running %v, slot control writes %v", g.latch, g.running, g.writes)
	}
}

// A cut that watches the queues reads each one inside its stop, before
// the power-off; a queue it cannot read is reported and the cut goes on.
func TestCutReadsTheQueuesInsideTheStop(t *testing.T) {
	for _, failing := range []bool{false, true} {
		g := &portGuest{latch: 0x80001234, slotCtl: 0x02f1, running: true, queueErr: failing}
		f := qmptest.Start(t, g.answer)
		c := dialFake(t, f)
		cut := testCut(c)
		if err := cut.WatchQueues(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		res, err := cut.Fire(ctxT(t))
		if err != nil {
			t.Fatalf("queue reads failing=%v: the cut failed: %v", failing, err)
		}
		if failing {
			if res.Queues != nil || !strings.Contains(res.QueuesErr, "virtqueue 0 of /machine/peripheral/disk0/virtio-backend") {
				t.Errorf("failing reads: queues %+v, error %q", res.Queues, res.QueuesErr)
			}
			continue
		}
		want := []VirtioQueue{{0, 0, 7, 7}, {1, 2, 7, 5}, {2, 4, 7, 3}}
		if !slices.Equal(res.Queues, want) || res.QueuesErr != "" {
			t.Errorf("queues %+v (%q), want %+v", res.Queues, res.QueuesErr, want)
		}
		for _, r := range g.queueReads {
			if r != "running=false writes=0" {
				t.Errorf("a queue was read at %s, want inside the stop before the power-off", r)
			}
		}
	}
}
