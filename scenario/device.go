package scenario

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"github.com/yank-dev/yank/journal"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Device describes a kind of hot-unpluggable disk as data
// (devices.json): what the guest's driver is called, where its remove()
// waits for outstanding I/O, and what its I/O timeout does. Everything
// device-specific in a trial comes from here: the unbind path, the
// window predicate "removing", the stuck-stack classification, the hang
// horizon and the recovery lines a RECOVERED verdict names. Its name is
// also the machine's disk kind (machine.DiskKind).
type Device struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Driver is the PCI driver bound to the device in the guest: the
	// unbind trigger writes to /sys/bus/pci/drivers/<Driver>/unbind.
	Driver string `json:"driver"`
	// RemoveWaits are the functions the driver's remove() waits in while
	// I/O is outstanding: the window "trigger": "removing" means the
	// trigger's stack holds one of them, and a stuck task under one is
	// classified by it.
	RemoveWaits []string `json:"remove_waits"`
	// RemoveEndLine is the console line (a regular expression) the
	// driver logs when its remove() starts its last wait on the device
	// (sd: "Synchronizing SCSI cache"): a cut before it lands inside the
	// "removing" window (Window.EndLine).
	RemoveEndLine string `json:"remove_end_line,omitempty"`
	// IOTimeout: the driver times requests out (nil: it never does, a
	// lost request waits forever).
	IOTimeout *IOTimeout `json:"io_timeout,omitempty"`
	// QueueDepthParam is the kernel parameter that sets the guest's queue
	// depth when the device has no such QEMU property (nvme), set to
	// QueueSize + QueueDepthExtra (an NVMe ring keeps one slot empty, so
	// io_queue_depth=5 gives 4 tags). MinQueueDepth is the smallest
	// QueueSize the device takes (QEMU refuses virtqueues under 4).
	QueueDepthParam string `json:"queue_depth_param,omitempty"`
	QueueDepthExtra int    `json:"queue_depth_extra,omitempty"`
	MinQueueDepth   int    `json:"min_queue_depth,omitempty"`
	// Recovery are console patterns that show the driver's timeout or
	// error recovery at work (a RECOVERED verdict quotes the first seen).
	Recovery []string `json:"recovery,omitempty"`

	recovery []*regexp.Regexp
}

// IOTimeout is a driver's request timeout and how yank sets it.
type IOTimeout struct {
	Default     Duration `json:"default"`      // what yank sets when Params.IOTimeout is 0
	KernelParam string   `json:"kernel_param"` // set on the kernel command line, in whole seconds
}

// DefaultDevice is the device of a scenario that names none.
const DefaultDevice = "virtio-blk"

//go:embed devices.json
var devicesJSON []byte

var devices = mustLoadDevices(devicesJSON)

func mustLoadDevices(b []byte) map[string]*Device {
	var f struct {
		Devices []*Device `json:"devices"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		panic("scenario: embedded devices.json: " + err.Error())
	}
	m := map[string]*Device{}
	for _, d := range f.Devices {
		if d.Name == "" || d.Driver == "" || len(d.RemoveWaits) == 0 {
			panic("scenario: devices.json: a device needs name, driver and remove_waits")
		}
		for _, p := range d.Recovery {
			d.recovery = append(d.recovery, regexp.MustCompile(p))
		}
		if d.RemoveEndLine != "" {
			regexp.MustCompile(d.RemoveEndLine)
		}
		m[d.Name] = d
	}
	return m
}

// LookupDevice returns a device by name, or an error listing the known ones.
func LookupDevice(name string) (*Device, error) {
	if d, ok := devices[name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("unknown device %q (known: %s)", name, strings.Join(DeviceNames(), ", "))
}

// DeviceNames lists the known devices, sorted.
func DeviceNames() []string {
	var n []string
	for k := range devices {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Timeout is the I/O timeout a trial sets for the device (0: the device
// has none; Params.IOTimeout applies only to devices that have one).
func (d *Device) Timeout(p Params) time.Duration {
	switch {
	case d.IOTimeout == nil:
		return 0
	case p.IOTimeout > 0:
		return p.IOTimeout
	}
	return time.Duration(d.IOTimeout.Default)
}

// HangAfter is how long a stall must last before it is a HANG: the stall
// window, plus, for a device whose driver times requests out, two of its
// timeouts (the timeout fires, then the disable or reset it starts must
// finish). A stall that ends before is RECOVERED.
func (d *Device) HangAfter(p Params) time.Duration {
	return p.StallWindow + 2*d.Timeout(p)
}

// HangAfterFor is the stall a HANG needs in this scenario: the device's
// horizon, or the scenario's hang_after when that is longer. A graceful
// removal leaves the device in place while the guest's I/O still flows
// through yank's write throttle, which completes nothing while it holds
// a request back: the stall window then starts only once the throttle
// could have let out every request the device can hold (ThrottleDrain).
func (s Scenario) HangAfterFor(p Params) time.Duration {
	d := s.DeviceInfo()
	if d == nil {
		return p.StallWindow
	}
	h := max(d.HangAfter(p), time.Duration(s.HangAfter))
	if s.Removal == RemovalGraceful {
		h = max(h, p.StallWindow+p.ThrottleDrain())
	}
	return h
}

// Budget is how long after the removal a trial of this scenario may take
// to reach a verdict: Params.Budget, or the hang horizon plus 30 s when
// that is longer.
func (s Scenario) Budget(p Params) time.Duration {
	return max(p.Budget, s.HangAfterFor(p)+30*time.Second)
}

// KernelArgs are the guest kernel parameters the device needs for p:
// its I/O timeout and queue depth when they are kernel parameters.
func (d *Device) KernelArgs(p Params) []string {
	var a []string
	if t := d.Timeout(p); t > 0 && d.IOTimeout.KernelParam != "" {
		a = append(a, fmt.Sprintf("%s=%d", d.IOTimeout.KernelParam, int((t+time.Second-1)/time.Second)))
	}
	if d.QueueDepthParam != "" && p.QueueSize > 0 {
		a = append(a, fmt.Sprintf("%s=%d", d.QueueDepthParam, p.QueueSize+d.QueueDepthExtra))
	}
	return a
}

// CheckParams names the knob a device cannot take.
func (d *Device) CheckParams(p Params) error {
	if d.IOTimeout != nil && p.IOTimeout != 0 && (p.IOTimeout < time.Second || p.IOTimeout%time.Second != 0) {
		return fmt.Errorf("io-timeout %s: %s takes whole seconds, at least 1s", p.IOTimeout, d.IOTimeout.KernelParam)
	}
	if d.MinQueueDepth > 0 && p.QueueSize > 0 && p.QueueSize < d.MinQueueDepth {
		return fmt.Errorf("queue size %d: %s needs at least %d", p.QueueSize, d.Name, d.MinQueueDepth)
	}
	return nil
}

// CheckIOTimeout checks an I/O timeout given for a run: it applies to
// the scenarios whose device has one, so at least one must.
func CheckIOTimeout(scenarios []Scenario, t time.Duration) error {
	if t == 0 {
		return nil
	}
	for _, s := range scenarios {
		if d := s.DeviceInfo(); d != nil && d.IOTimeout != nil {
			return d.CheckParams(Params{IOTimeout: t})
		}
	}
	return fmt.Errorf("%s: none of the scenarios' devices has an I/O timeout (devices with one: %s)", t, strings.Join(devicesWithTimeout(), ", "))
}

func devicesWithTimeout() []string {
	var n []string
	for _, name := range DeviceNames() {
		if devices[name].IOTimeout != nil {
			n = append(n, name)
		}
	}
	return n
}

// RecoveryLine is the first console line (after the trigger's T0) that
// shows the driver recovering, or "".
func (d *Device) RecoveryLine(console []journal.Entry[string]) string {
	_, text, _ := firstAfterT0(console, func(text string) bool {
		return slices.ContainsFunc(d.recovery, func(re *regexp.Regexp) bool { return re.MatchString(text) })
	})
	return text
}
