package machine

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// goldenVirtioBlkArgs is the argv of the standard guest plus a second,
// read-throttled disk, as machine rendered it before disks had a kind
// (commit 3f75e6b). BenchmarkBootToAgentReady compares boots to raw QEMU
// on this argv: the virtio-blk command line must not move a byte.
var goldenVirtioBlkArgs = []string{
	"-name",
	"g",
	"-nodefaults",
	"-no-user-config",
	"-display",
	"none",
	"-no-reboot",
	"-machine",
	"q35,accel=tcg",
	"-global",
	"ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
	"-cpu",
	"max",
	"-m",
	"512",
	"-smp",
	"1",
	"-kernel",
	"/k",
	"-initrd",
	"/i",
	"-append",
	"console=ttyS0 panic=-1 quiet",
	"-pidfile",
	"/run/x/qemu.pid",
	"-chardev",
	"stdio,id=con0,signal=off",
	"-serial",
	"chardev:con0",
	"-chardev",
	"socket,id=qmp0,path=/run/x/qmp.sock,server=on,wait=off",
	"-mon",
	"chardev=qmp0,mode=control",
	"-device",
	"virtio-serial-pci,id=vser0,bus=pcie.0",
	"-chardev",
	"socket,id=qga0,path=/run/x/qga.sock,server=on,wait=off",
	"-device",
	"virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
	"-bios",
	"/usr/share/qemu/qboot.rom",
	"-device",
	"pvpanic",
	"-device",
	"pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1",
	"-device",
	"pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2",
	"-blockdev",
	"driver=null-co,node-name=null-disk0,size=1073741824,read-zeroes=on",
	"-object",
	"throttle-group,id=tg-disk0,x-bps-write=2097152",
	"-blockdev",
	"driver=throttle,node-name=thr-disk0,throttle-group=tg-disk0,file=null-disk0",
	"-device",
	"virtio-blk-pci,id=disk0,bus=rp1,drive=thr-disk0,queue-size=4,num-queues=1",
	"-blockdev",
	"driver=null-co,node-name=null-disk1,size=8388608,read-zeroes=on",
	"-object",
	"throttle-group,id=tg-disk1,x-bps-read=7,x-iops-read=5",
	"-blockdev",
	"driver=throttle,node-name=thr-disk1,throttle-group=tg-disk1,file=null-disk1",
	"-device",
	"virtio-blk-pci,id=disk1,bus=rp2,drive=thr-disk1",
}

func goldenSpec() Spec {
	s := HotplugGuest("g", "/k", "/i")
	s.RootPorts = append(s.RootPorts, RootPort{ID: "rp2"})
	s.Disks = append(s.Disks, Disk{ID: "disk1", Port: "rp2", SizeMB: 8, Throttle: Throttle{IopsRead: 5, BpsRead: 7}})
	s.Append = "quiet"
	return s
}

func TestVirtioBlkArgsUnchanged(t *testing.T) {
	s := goldenSpec()
	for _, kind := range []DiskKind{"", DiskVirtioBlk} {
		s.Disks[1].Kind = kind
		if got := s.Args(pathsIn("/run/x"), AccelTCG); !slices.Equal(got, goldenVirtioBlkArgs) {
			t.Errorf("kind %q: argv changed:\ngot  %q\nwant %q", kind, got, goldenVirtioBlkArgs)
		}
	}
}

// deviceArgs are the values of the argv's -device options.
func deviceArgs(args []string) []string {
	var d []string
	for i, a := range args {
		if a == "-device" && i+1 < len(args) {
			d = append(d, args[i+1])
		}
	}
	return d
}

func TestArgsPerKind(t *testing.T) {
	for kind, want := range map[DiskKind][]string{
		DiskVirtioBlk: {"virtio-blk-pci,id=disk0,bus=rp1,drive=thr-disk0,queue-size=4,num-queues=1"},
		DiskNVMe:      {"nvme,id=disk0,bus=rp1,drive=thr-disk0,serial=yank-disk0,max_ioqpairs=1"},
		DiskVirtioSCSI: {
			"virtio-scsi-pci,id=disk0,bus=rp1,virtqueue_size=4,cmd_per_lun=4,num_queues=1",
			"scsi-hd,id=disk0-hd,bus=disk0.0,drive=thr-disk0",
		},
	} {
		s := HotplugGuest("g", "/k", "/i")
		s.Disks[0].Kind = kind
		args := s.Args(pathsIn("/run/x"), AccelTCG)
		devs := deviceArgs(args)
		// virtio-serial, its port, pvpanic, the root port, then the disk's.
		if got := devs[4:]; !slices.Equal(got, want) {
			t.Errorf("%s: disk devices %q, want %q", kind, got, want)
		}
		joined := strings.Join(args, " ")
		if !strings.Contains(joined, "-blockdev driver=throttle,node-name=thr-disk0,throttle-group=tg-disk0,file=null-disk0 -device "+want[0]) {
			t.Errorf("%s: the disk's device does not follow its blockdev:\n%s", kind, joined)
		}
	}
	// Without knobs, QEMU's defaults: no queue properties at all.
	for kind, want := range map[DiskKind]string{
		DiskVirtioBlk:  "virtio-blk-pci,id=d,bus=p,drive=null-d",
		DiskNVMe:       "nvme,id=d,bus=p,drive=null-d,serial=yank-d",
		DiskVirtioSCSI: "virtio-scsi-pci,id=d,bus=p",
	} {
		if got := (Disk{ID: "d", Port: "p", Kind: kind}).Devices("p")[0].String(); got != want {
			t.Errorf("%s without knobs: %s, want %s", kind, got, want)
		}
	}
	// machine ignores QueueSize for nvme (the guest's nvme.io_queue_depth).
	if got := (Disk{ID: "d", Kind: DiskNVMe, QueueSize: 16}).Devices("p")[0].String(); got != "nvme,id=d,bus=p,drive=null-d,serial=yank-d" {
		t.Errorf("nvme with a queue size: %s", got)
	}
}

func TestDevicesKeepTheDiskIDOnThePort(t *testing.T) {
	for _, kind := range DiskKinds() {
		devs := Disk{ID: "disk7", Kind: kind}.Devices("ua-rp7")
		if id, _ := devs[0].Get("id"); id != "disk7" {
			t.Errorf("%s: first device has id %v, want the disk's", kind, id)
		}
		if bus, _ := devs[0].Get("bus"); bus != "ua-rp7" {
			t.Errorf("%s: first device is on bus %v, want the port", kind, bus)
		}
		drives := 0
		for _, d := range devs {
			if v, ok := d.Get("drive"); ok {
				drives++
				if v != "null-disk7" {
					t.Errorf("%s: %s has drive %v", kind, d.Driver, v)
				}
			}
		}
		if drives != 1 {
			t.Errorf("%s: %d devices use the drive, want 1", kind, drives)
		}
	}
	if got := len(DiskKinds()); got != 3 || DiskKinds()[0] != DiskVirtioBlk {
		t.Errorf("DiskKinds() = %v", DiskKinds())
	}
}

func TestDeviceRendering(t *testing.T) {
	d := Device{Driver: "x-dev", Props: []Prop{{"id", "a"}, {"serial", "b,c"}, {"n", 3}}}
	if got, want := d.String(), "x-dev,id=a,serial=b,,c,n=3"; got != want {
		t.Errorf("String: %s, want %s", got, want)
	}
	j, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(j), `{"driver":"x-dev","id":"a","serial":"b,c","n":3}`; got != want {
		t.Errorf("JSON: %s, want %s", got, want)
	}
	if _, err := json.Marshal(Device{Driver: "x", Props: []Prop{{"f", 1.5}}}); err == nil || !strings.Contains(err.Error(), "float64") {
		t.Errorf("a float property: got %v, want an error", err)
	}
}

func TestDevicesPanicOnUnknownKind(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"sata"`) {
			t.Errorf("got %v, want a panic naming the kind", r)
		}
	}()
	Disk{ID: "d", Kind: "sata"}.Devices("p")
}

func TestWithDefaultsKind(t *testing.T) {
	s := HotplugGuest("g", "/k", "/i").WithDefaults()
	if s.Disks[0].Kind != DiskVirtioBlk {
		t.Fatalf("default kind %q", s.Disks[0].Kind)
	}
	s.Disks[0].Kind = DiskNVMe
	if s.WithDefaults().Disks[0].Kind != DiskNVMe {
		t.Fatal("WithDefaults overrode a kind")
	}
}

func TestValidateDiskKinds(t *testing.T) {
	base := HotplugGuest("g", "/etc/hostname", "/etc/hostname")
	for name, tc := range map[string]struct {
		mutate func(*Disk)
		want   []string // all in the error; nil: valid
	}{
		"unknown kind":          {func(d *Disk) { d.Kind = "sata" }, []string{`disk "disk0"`, `kind "sata"`, "virtio-blk, nvme, virtio-scsi"}},
		"nvme":                  {func(d *Disk) { d.Kind = DiskNVMe }, nil},
		"nvme odd queue size":   {func(d *Disk) { d.Kind = DiskNVMe; d.QueueSize = 5 }, nil},
		"nvme negative queue":   {func(d *Disk) { d.Kind = DiskNVMe; d.QueueSize = -1 }, []string{"negative"}},
		"virtio-scsi":           {func(d *Disk) { d.Kind = DiskVirtioSCSI }, nil},
		"scsi queue size 2":     {func(d *Disk) { d.Kind = DiskVirtioSCSI; d.QueueSize = 2 }, []string{"power of two from 4 to 1024"}},
		"scsi queue size 6":     {func(d *Disk) { d.Kind = DiskVirtioSCSI; d.QueueSize = 6 }, []string{"power of two"}},
		"scsi queue size 2048":  {func(d *Disk) { d.Kind = DiskVirtioSCSI; d.QueueSize = 2048 }, []string{"power of two"}},
		"blk queue size 2":      {func(d *Disk) { d.QueueSize = 2 }, []string{`disk "disk0" queue size 2`}},
		"negative queues":       {func(d *Disk) { d.Kind = DiskNVMe; d.NumQueues = -2 }, []string{"num-queues -2"}},
		"default kind explicit": {func(d *Disk) { d.Kind = DiskVirtioBlk }, nil},
	} {
		s := base
		s.Disks = append([]Disk(nil), base.Disks...)
		tc.mutate(&s.Disks[0])
		err := s.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got %v, want an error with %q", name, err, w)
			}
		}
	}
	// The scsi-hd's id must be free.
	s := base
	s.RootPorts = []RootPort{{ID: "rp1"}, {ID: "disk0-hd"}}
	s.Disks = []Disk{{ID: "disk0", Port: "rp1", Kind: DiskVirtioSCSI}}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `"disk0-hd" for its scsi-hd, which a root port uses`) {
		t.Errorf("scsi-hd id clash: got %v", err)
	}
	s.Disks[0].Kind = DiskNVMe
	if err := s.Validate(); err != nil {
		t.Errorf("no scsi-hd, no clash: %v", err)
	}
}
