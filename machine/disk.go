package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// DiskKind is the PCI device a Disk shows the guest.
type DiskKind string

const (
	// DiskVirtioBlk is a virtio-blk-pci device (guest: virtio_blk, vda).
	DiskVirtioBlk DiskKind = "virtio-blk"
	// DiskNVMe is QEMU's nvme controller with one namespace (guest: nvme,
	// nvme0n1).
	DiskNVMe DiskKind = "nvme"
	// DiskVirtioSCSI is a virtio-scsi-pci controller with one scsi-hd on
	// its bus (guest: virtio_scsi and sd, sda).
	DiskVirtioSCSI DiskKind = "virtio-scsi"
)

// DiskKinds lists the kinds a Disk can be, the default first.
func DiskKinds() []DiskKind { return []DiskKind{DiskVirtioBlk, DiskNVMe, DiskVirtioSCSI} }

func knownKind(k DiskKind) bool {
	for _, v := range DiskKinds() {
		if k == v {
			return true
		}
	}
	return false
}

func diskKindList() string {
	var s []string
	for _, k := range DiskKinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Disk is a block device on a root port, backed by a null-co blockdev (no
// data, reads return zeroes) behind an optional throttle. Kind says which
// PCI device QEMU shows the guest (see Devices). Whatever the kind, the
// PCI function on the port has qdev id ID, so qmp.FindPCI, Graceful,
// PrepareSurprise and Surprise find and remove it by that id.
type Disk struct {
	ID     string   // qdev id of the PCI device on the root port
	Port   string   // RootPort.ID it sits on
	Kind   DiskKind // default DiskVirtioBlk
	SizeMB int      // default 1024
	// QueueSize is the depth of the I/O queue: virtio-blk's queue-size,
	// virtio-scsi's virtqueue_size and cmd_per_lun. 0 = QEMU's defaults
	// (256; virtio-scsi 256 and 128). machine ignores it for nvme, whose
	// QEMU 7.2 controller has no such property (see Devices).
	QueueSize int
	// NumQueues is the number of I/O queues: virtio-blk's num-queues,
	// virtio-scsi's num_queues, nvme's max_ioqpairs. 0 = QEMU's defaults
	// (one per vCPU for the virtio kinds, 64 for nvme).
	NumQueues int
	Throttle  Throttle
}

// Throttle limits I/O through a throttle-group. Zero means unlimited.
type Throttle struct {
	BpsWrite  int64
	BpsRead   int64
	IopsWrite int64
	IopsRead  int64
}

func (t Throttle) enabled() bool {
	return t.BpsWrite > 0 || t.BpsRead > 0 || t.IopsWrite > 0 || t.IopsRead > 0
}

// Device is one QEMU -device: a driver and its properties, in order. It is
// the single description of a disk's devices, which each backend renders
// in its own syntax: String for the local backend's key=value -device,
// MarshalJSON for the JSON -device the libvirt backend puts in
// <qemu:commandline>.
type Device struct {
	Driver string
	Props  []Prop
}

// Prop is one device property. Value is a string or an int (a JSON
// number for QEMU's integer properties).
type Prop struct {
	Key   string
	Value any
}

// String is the key=value form: "driver,key=value,...", with commas in
// values doubled as QEMU's option syntax wants.
func (d Device) String() string {
	var b strings.Builder
	b.WriteString(d.Driver)
	for _, p := range d.Props {
		fmt.Fprintf(&b, ",%s=%s", p.Key, strings.ReplaceAll(fmt.Sprint(p.Value), ",", ",,"))
	}
	return b.String()
}

// MarshalJSON is the JSON form: {"driver":..., then the properties in
// order}.
func (d Device) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"driver":`)
	v, err := json.Marshal(d.Driver)
	if err != nil {
		return nil, err
	}
	b.Write(v)
	for _, p := range d.Props {
		k, err := json.Marshal(p.Key)
		if err != nil {
			return nil, err
		}
		switch p.Value.(type) {
		case string, int:
		default:
			return nil, fmt.Errorf("machine: device %s property %s: value %v is a %T, want a string or an int", d.Driver, p.Key, p.Value, p.Value)
		}
		if v, err = json.Marshal(p.Value); err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the value of property key, if the device has it.
func (d Device) Get(key string) (any, bool) {
	for _, p := range d.Props {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// SCSIDiskID is the qdev id of a virtio-scsi disk's scsi-hd: the disk's ID
// with "-hd". Its controller's bus is the disk's ID with ".0".
func (d Disk) SCSIDiskID() string { return d.ID + "-hd" }

// NVMeSerial is the serial number of an nvme disk's controller (QEMU
// requires one; the guest shows it in /sys/class/nvme/nvme*/serial).
func (d Disk) NVMeSerial() string { return "yank-" + d.ID }

// Devices returns the QEMU devices of the disk, in creation order, with
// the one on the root port first: its driver is the kind's PCI device,
// its qdev id the disk's ID and its bus is bus, the root port's qdev id
// as QEMU knows it (the Spec's RootPort.ID locally, libvirt's alias of
// the port there). Their drive is the node BlockdevArgs makes.
//
//   - virtio-blk: virtio-blk-pci with queue-size = QueueSize and
//     num-queues = NumQueues.
//   - virtio-scsi: virtio-scsi-pci with virtqueue_size = QueueSize,
//     cmd_per_lun = QueueSize (the per-LUN depth the guest's sd device
//     gets; Linux clamps it to the ring size anyway, QEMU's 128 would
//     only be clamped) and num_queues = NumQueues, then scsi-hd (id
//     SCSIDiskID) on the controller's bus ID.0 (target 0, LUN 0).
//   - nvme: nvme with serial NVMeSerial, the drive as its single
//     namespace (nsid 1; QEMU 7.2 still takes drive= on the controller)
//     and max_ioqpairs = NumQueues. QueueSize is ignored, not rejected:
//     QEMU 7.2's controller has no property for the I/O queue depth (its
//     CAP.MQES is fixed at 0x7ff, 2048 entries, and msix_qsize is the
//     MSI-X table size, not a queue), so the depth is the guest's choice:
//     nvme.io_queue_depth= on the kernel command line (2-4095; blk-mq
//     gets one tag fewer, an NVMe ring keeps one slot empty). The trial
//     sets that from the same QueueSize, so one queue size describes
//     every kind.
//
// Devices panics on a kind Spec.Validate rejects.
func (d Disk) Devices(bus string) []Device {
	drive := d.driveNode()
	opt := func(props []Prop, key string, v int) []Prop {
		if v > 0 {
			props = append(props, Prop{key, v})
		}
		return props
	}
	switch d.Kind {
	case DiskVirtioBlk, "":
		props := []Prop{{"id", d.ID}, {"bus", bus}, {"drive", drive}}
		props = opt(props, "queue-size", d.QueueSize)
		props = opt(props, "num-queues", d.NumQueues)
		return []Device{{Driver: "virtio-blk-pci", Props: props}}
	case DiskVirtioSCSI:
		props := []Prop{{"id", d.ID}, {"bus", bus}}
		props = opt(props, "virtqueue_size", d.QueueSize)
		props = opt(props, "cmd_per_lun", d.QueueSize)
		props = opt(props, "num_queues", d.NumQueues)
		return []Device{
			{Driver: "virtio-scsi-pci", Props: props},
			{Driver: "scsi-hd", Props: []Prop{{"id", d.SCSIDiskID()}, {"bus", d.ID + ".0"}, {"drive", drive}}},
		}
	case DiskNVMe:
		props := []Prop{{"id", d.ID}, {"bus", bus}, {"drive", drive}, {"serial", d.NVMeSerial()}}
		props = opt(props, "max_ioqpairs", d.NumQueues)
		return []Device{{Driver: "nvme", Props: props}}
	}
	panic(fmt.Sprintf("machine: disk %q has unknown kind %q (Spec.Validate rejects it)", d.ID, d.Kind))
}

// BlockdevArgs returns the -object/-blockdev arguments behind the disk
// (null-co, optionally behind a throttle group) and the node name its
// device uses as drive. Both backends pass these to QEMU as they are:
// libvirt has no XML for null-co or throttle filters.
func (d Disk) BlockdevArgs() (args []string, drive string) {
	file := "null-" + d.ID
	args = []string{"-blockdev", fmt.Sprintf("driver=null-co,node-name=%s,size=%d,read-zeroes=on", file, int64(d.SizeMB)<<20)}
	if !d.Throttle.enabled() {
		return args, file
	}
	group, node := "tg-"+d.ID, "thr-"+d.ID
	obj := "throttle-group,id=" + group
	for _, kv := range []struct {
		key string
		v   int64
	}{{"x-bps-write", d.Throttle.BpsWrite}, {"x-bps-read", d.Throttle.BpsRead}, {"x-iops-write", d.Throttle.IopsWrite}, {"x-iops-read", d.Throttle.IopsRead}} {
		if kv.v > 0 {
			obj += fmt.Sprintf(",%s=%d", kv.key, kv.v)
		}
	}
	args = append(args, "-object", obj,
		"-blockdev", fmt.Sprintf("driver=throttle,node-name=%s,throttle-group=%s,file=%s", node, group, file))
	return args, node
}

// driveNode is the node name BlockdevArgs returns as drive.
func (d Disk) driveNode() string {
	if d.Throttle.enabled() {
		return "thr-" + d.ID
	}
	return "null-" + d.ID
}

// validate checks the disk's kind and queue knobs.
func (d Disk) validate() []error {
	var errs []error
	if !knownKind(d.Kind) && d.Kind != "" {
		return []error{fmt.Errorf("machine spec: disk %q has unknown kind %q (want %s; empty means %s)", d.ID, d.Kind, diskKindList(), DiskVirtioBlk)}
	}
	switch d.Kind {
	case DiskNVMe:
		// QueueSize is the guest's nvme.io_queue_depth, not QEMU's.
		if d.QueueSize < 0 {
			errs = append(errs, fmt.Errorf("machine spec: disk %q queue size %d is negative", d.ID, d.QueueSize))
		}
	default:
		// QEMU 7.2 refuses a ring of 2 or less (both kinds) and one that
		// is not a power of two up to 1024 (virtio-blk; virtio-scsi
		// aborts above 1024 and takes other sizes, which the virtio spec
		// does not allow for a split ring).
		if d.QueueSize < 0 || d.QueueSize&(d.QueueSize-1) != 0 || d.QueueSize > 1024 || (d.QueueSize > 0 && d.QueueSize < 4) {
			errs = append(errs, fmt.Errorf("machine spec: disk %q queue size %d must be a power of two from 4 to 1024 (or 0 for QEMU's default)", d.ID, d.QueueSize))
		}
	}
	if d.NumQueues < 0 {
		errs = append(errs, fmt.Errorf("machine spec: disk %q num-queues %d is negative", d.ID, d.NumQueues))
	}
	return errs
}

// BlockDeviceScript is a guest shell script that prints, one per line,
// the block devices whose sysfs device sits under PCI function bdf
// ("0000:01:00.0"): vda, nvme0n1, sda, whatever the kind, so nothing
// needs a per-device lookup. It runs in the image's busybox sh.
func BlockDeviceScript(bdf string) string {
	return `for b in /sys/block/*; do case $(readlink -f $b) in */` + bdf + `/*) echo ${b##*/};; esac; done`
}
