package qmp

import (
	"context"
	"fmt"
	"strings"
)

// Stop pauses all vCPUs (at an instruction boundary).
func (c *Client) Stop(ctx context.Context) error { return c.Execute(ctx, "stop", nil, nil) }

// Cont resumes the vCPUs.
func (c *Client) Cont(ctx context.Context) error { return c.Execute(ctx, "cont", nil, nil) }

// Quit asks QEMU to exit.
func (c *Client) Quit(ctx context.Context) error { return c.Execute(ctx, "quit", nil, nil) }

// Status is the reply of query-status.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// QueryStatus reports whether the vCPUs run.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// KVMStatus is the reply of query-kvm.
type KVMStatus struct {
	Enabled bool `json:"enabled"`
	Present bool `json:"present"`
}

// QueryKVM reports whether this QEMU runs under KVM (else TCG).
func (c *Client) QueryKVM(ctx context.Context) (KVMStatus, error) {
	var s KVMStatus
	err := c.Execute(ctx, "query-kvm", nil, &s)
	return s, err
}

// HMP runs a human monitor command and returns its text output.
func (c *Client) HMP(ctx context.Context, command string) (string, error) {
	var out string
	err := c.Execute(ctx, "human-monitor-command", map[string]string{"command-line": command}, &out)
	if err != nil {
		return "", err
	}
	return out, nil
}

// DeviceAdd hot-plugs a device. props are passed as device_add arguments.
func (c *Client) DeviceAdd(ctx context.Context, driver, id string, props map[string]any) error {
	args := map[string]any{"driver": driver, "id": id}
	for k, v := range props {
		args[k] = v
	}
	return c.Execute(ctx, "device_add", args, nil)
}

// DeviceDel requests removal of a device. Success only means the request
// was accepted: wait for DEVICE_DELETED (see Graceful).
func (c *Client) DeviceDel(ctx context.Context, id string) error {
	return c.Execute(ctx, "device_del", map[string]string{"id": id}, nil)
}

// IsDeviceDeleted matches the DEVICE_DELETED event for the device with qdev
// id. QEMU also emits one for the device's virtio-backend child (with a
// path but no matching "device"), which this ignores.
func IsDeviceDeleted(id string) func(Event) bool {
	return func(e Event) bool {
		if e.Event != "DEVICE_DELETED" {
			return false
		}
		dev, _ := e.Data["device"].(string)
		return dev == id
	}
}

// PCIAddress is a bus/slot/function triple.
type PCIAddress struct {
	Bus, Slot, Function int
}

func (a PCIAddress) String() string {
	return fmt.Sprintf("%02x:%02x.%d", a.Bus, a.Slot, a.Function)
}

// PCIDevice is the part of a query-pci device entry yank uses.
type PCIDevice struct {
	Bus       int    `json:"bus"`
	Slot      int    `json:"slot"`
	Function  int    `json:"function"`
	QdevID    string `json:"qdev_id"`
	ClassInfo struct {
		Desc  string `json:"desc"`
		Class int    `json:"class"`
	} `json:"class_info"`
	ID struct {
		Device int `json:"device"`
		Vendor int `json:"vendor"`
	} `json:"id"`
	Bridge *struct {
		Bus struct {
			Number      int `json:"number"`
			Secondary   int `json:"secondary"`
			Subordinate int `json:"subordinate"`
		} `json:"bus"`
		Devices []PCIDevice `json:"devices"`
	} `json:"pci_bridge"`
}

// Address returns the device's bus/slot/function.
func (d PCIDevice) Address() PCIAddress { return PCIAddress{d.Bus, d.Slot, d.Function} }

// PCIBus is one root bus of query-pci.
type PCIBus struct {
	Bus     int         `json:"bus"`
	Devices []PCIDevice `json:"devices"`
}

// QueryPCI returns the PCI topology.
func (c *Client) QueryPCI(ctx context.Context) ([]PCIBus, error) {
	var buses []PCIBus
	err := c.Execute(ctx, "query-pci", nil, &buses)
	return buses, err
}

// PCIPath is a device together with the bridges above it, outermost first.
type PCIPath struct {
	Device  PCIDevice
	Parents []PCIDevice
}

// Port returns the bridge the device sits under (its root port), if any.
func (p PCIPath) Port() (PCIDevice, bool) {
	if len(p.Parents) == 0 {
		return PCIDevice{}, false
	}
	return p.Parents[len(p.Parents)-1], true
}

// FindPCI looks a device up by qdev id in query-pci, with its parents.
func (c *Client) FindPCI(ctx context.Context, qdevID string) (PCIPath, error) {
	buses, err := c.QueryPCI(ctx)
	if err != nil {
		return PCIPath{}, err
	}
	if p, ok := findPCI(buses, qdevID); ok {
		return p, nil
	}
	return PCIPath{}, fmt.Errorf("qmp: no PCI device with id %q in query-pci (present: %s)", qdevID, strings.Join(pciIDs(buses), ", "))
}

func findPCI(buses []PCIBus, id string) (PCIPath, bool) {
	var walk func(devs []PCIDevice, parents []PCIDevice) (PCIPath, bool)
	walk = func(devs []PCIDevice, parents []PCIDevice) (PCIPath, bool) {
		for _, d := range devs {
			if d.QdevID == id {
				return PCIPath{Device: d, Parents: parents}, true
			}
			if d.Bridge != nil {
				if p, ok := walk(d.Bridge.Devices, append(append([]PCIDevice(nil), parents...), d)); ok {
					return p, true
				}
			}
		}
		return PCIPath{}, false
	}
	for _, b := range buses {
		if p, ok := walk(b.Devices, nil); ok {
			return p, true
		}
	}
	return PCIPath{}, false
}

func pciIDs(buses []PCIBus) []string {
	var ids []string
	var walk func([]PCIDevice)
	walk = func(devs []PCIDevice) {
		for _, d := range devs {
			if d.QdevID != "" {
				ids = append(ids, d.QdevID)
			}
			if d.Bridge != nil {
				walk(d.Bridge.Devices)
			}
		}
	}
	for _, b := range buses {
		walk(b.Devices)
	}
	if len(ids) == 0 {
		ids = []string{"none with an id"}
	}
	return ids
}
