package machine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Spec describes a guest. Zero values get sane defaults (see WithDefaults).
type Spec struct {
	Name      string // for logs and the runtime dir name
	Kernel    string // bzImage path (required)
	Initrd    string // initramfs path (required)
	Append    string // extra kernel command line
	MemoryMB  int    // default 512
	CPUs      int    // default 1
	Accel     Accel  // default AccelAuto
	Firmware  Firmware
	QEMU      string // qemu-system-x86_64 binary; default from PATH
	RootPorts []RootPort
	Disks     []Disk
	// PVPanic adds the pvpanic device so a guest panic is reported as the
	// GUEST_PANICKED QMP event.
	PVPanic   bool
	ExtraArgs []string
}

// Accel selects the accelerator.
type Accel string

const (
	AccelAuto Accel = ""    // KVM when /dev/kvm is usable, else TCG
	AccelKVM  Accel = "kvm" // fail if KVM is unusable
	AccelTCG  Accel = "tcg"
)

// Firmware selects the BIOS.
type Firmware string

const (
	FirmwareQboot   Firmware = ""        // qboot: faster than SeaBIOS for direct kernel boot
	FirmwareSeaBIOS Firmware = "seabios" // QEMU's default
)

// RootPort is a pcie-root-port with a native-hotplug slot.
type RootPort struct {
	ID      string
	Chassis int // unique per port; default index+1
	Slot    int // unique per port; default index+1
}

// Paths are the files a running machine uses inside its runtime dir.
type Paths struct {
	Dir, QMP, Agent, Console, QEMULog, PIDFile string
}

func pathsIn(dir string) Paths {
	return Paths{
		Dir:     dir,
		QMP:     filepath.Join(dir, "qmp.sock"),
		Agent:   filepath.Join(dir, "qga.sock"),
		Console: filepath.Join(dir, "console.log"),
		QEMULog: filepath.Join(dir, "qemu.log"),
		PIDFile: filepath.Join(dir, "qemu.pid"),
	}
}

// AgentPortName is the virtio-serial port name the guest's init looks for.
const AgentPortName = "org.qemu.guest_agent.0"

// DefaultQEMU is the QEMU binary used when Spec.QEMU is empty.
const DefaultQEMU = "qemu-system-x86_64"

// QbootROM is the qboot firmware (FirmwareQboot) on the host QEMU runs on.
const QbootROM = "/usr/share/qemu/qboot.rom"

// WithDefaults returns the spec with its zero values filled in: what the
// backends turn into a guest.
func (s Spec) WithDefaults() Spec {
	if s.Name == "" {
		s.Name = "guest"
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = 512
	}
	if s.CPUs == 0 {
		s.CPUs = 1
	}
	if s.QEMU == "" {
		s.QEMU = DefaultQEMU
	}
	s.RootPorts = append([]RootPort(nil), s.RootPorts...)
	for i := range s.RootPorts {
		if s.RootPorts[i].Chassis == 0 {
			s.RootPorts[i].Chassis = i + 1
		}
		if s.RootPorts[i].Slot == 0 {
			s.RootPorts[i].Slot = i + 1
		}
	}
	s.Disks = append([]Disk(nil), s.Disks...)
	for i := range s.Disks {
		if s.Disks[i].SizeMB == 0 {
			s.Disks[i].SizeMB = 1024
		}
		if s.Disks[i].Kind == "" {
			s.Disks[i].Kind = DiskVirtioBlk
		}
	}
	return s
}

// Validate checks the spec for mistakes a user can fix, naming the field.
func (s Spec) Validate() error {
	var errs []error
	if s.Kernel == "" {
		errs = append(errs, errors.New("machine spec: Kernel is empty: give the path to a bzImage"))
	} else if _, err := os.Stat(s.Kernel); err != nil {
		errs = append(errs, fmt.Errorf("machine spec: kernel %s: %w (build it with `yank kernel build` or pass an existing bzImage)", s.Kernel, err))
	}
	if s.Initrd == "" {
		errs = append(errs, errors.New("machine spec: Initrd is empty: build one with `yank image build`"))
	} else if _, err := os.Stat(s.Initrd); err != nil {
		errs = append(errs, fmt.Errorf("machine spec: initrd %s: %w (build one with `yank image build`)", s.Initrd, err))
	}
	switch s.Accel {
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		errs = append(errs, fmt.Errorf("machine spec: unknown accel %q (want kvm, tcg or empty for auto)", s.Accel))
	}
	switch s.Firmware {
	case FirmwareQboot, FirmwareSeaBIOS:
	default:
		errs = append(errs, fmt.Errorf("machine spec: unknown firmware %q (want seabios or empty for qboot)", s.Firmware))
	}
	ids := map[string]string{}
	checkID := func(kind, id string) {
		if id == "" {
			errs = append(errs, fmt.Errorf("machine spec: a %s has an empty ID", kind))
			return
		}
		if strings.ContainsAny(id, ",= ") {
			errs = append(errs, fmt.Errorf("machine spec: %s ID %q contains ',', '=' or a space", kind, id))
		}
		if prev, dup := ids[id]; dup {
			errs = append(errs, fmt.Errorf("machine spec: ID %q used by a %s and a %s", id, prev, kind))
		}
		ids[id] = kind
	}
	ports := map[string]bool{}
	for _, p := range s.RootPorts {
		checkID("root port", p.ID)
		ports[p.ID] = true
	}
	used := map[string]string{}
	for _, d := range s.Disks {
		checkID("disk", d.ID)
		if !ports[d.Port] {
			errs = append(errs, fmt.Errorf("machine spec: disk %q is on root port %q, which the spec does not define", d.ID, d.Port))
		} else if other, taken := used[d.Port]; taken {
			errs = append(errs, fmt.Errorf("machine spec: disks %q and %q share root port %q (one device per hotplug slot)", other, d.ID, d.Port))
		}
		used[d.Port] = d.ID
		errs = append(errs, d.validate()...)
	}
	// A virtio-scsi disk's scsi-hd takes a qdev id of its own.
	for _, d := range s.Disks {
		if d.Kind != DiskVirtioSCSI || d.ID == "" {
			continue
		}
		if other, dup := ids[d.SCSIDiskID()]; dup {
			errs = append(errs, fmt.Errorf("machine spec: virtio-scsi disk %q needs qdev id %q for its scsi-hd, which a %s uses", d.ID, d.SCSIDiskID(), other))
		}
	}
	if s.MemoryMB < 0 || s.CPUs < 0 {
		errs = append(errs, errors.New("machine spec: MemoryMB and CPUs must not be negative"))
	}
	return errors.Join(errs...)
}

// Args returns QEMU's argument vector (without the binary) for this spec,
// with its sockets and logs in p, on accelerator accel.
func (s Spec) Args(p Paths, accel Accel) []string {
	s = s.WithDefaults()
	cpu := "max"
	if accel == AccelKVM {
		cpu = "host"
	}
	cmdline := "console=ttyS0 panic=-1 " + s.Append
	a := []string{
		"-name", s.Name,
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		// Native pciehp owns the root ports' slots (not ACPI hotplug), so
		// device_del is an Attention Button press and the host can cut slot
		// power for a surprise removal.
		"-machine", "q35,accel=" + string(accel),
		"-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
		"-cpu", cpu,
		"-m", strconv.Itoa(s.MemoryMB), "-smp", strconv.Itoa(s.CPUs),
		"-kernel", s.Kernel, "-initrd", s.Initrd, "-append", strings.TrimSpace(cmdline),
		"-pidfile", p.PIDFile,
		// The console goes to QEMU's stdout, which yank timestamps line by line.
		"-chardev", "stdio,id=con0,signal=off",
		"-serial", "chardev:con0",
		"-chardev", "socket,id=qmp0,path=" + p.QMP + ",server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
		// The agent channel sits on the root bus so it never goes away with
		// a hot-unplugged slot.
		"-device", "virtio-serial-pci,id=vser0,bus=pcie.0",
		"-chardev", "socket,id=qga0,path=" + p.Agent + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=qga0,name=" + AgentPortName,
	}
	if s.Firmware == FirmwareQboot {
		a = append(a, "-bios", QbootROM)
	}
	if s.PVPanic {
		a = append(a, "-device", "pvpanic")
	}
	for _, rp := range s.RootPorts {
		a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=%s,bus=pcie.0,chassis=%d,slot=%d", rp.ID, rp.Chassis, rp.Slot))
	}
	for _, d := range s.Disks {
		backend, _ := d.BlockdevArgs()
		a = append(a, backend...)
		for _, dev := range d.Devices(d.Port) {
			a = append(a, "-device", dev.String())
		}
	}
	return append(a, s.ExtraArgs...)
}

// ResolveAccel picks a guest's accelerator: $YANK_ACCEL (kvm, tcg)
// overrides auto; auto becomes KVM when hostKVM says the host QEMU runs on
// can run KVM guests, else TCG; kvm on a host that cannot is an error.
// Each backend passes its host's test (locally, KVMUsable).
func ResolveAccel(a Accel, hostKVM func() (bool, error)) (Accel, error) {
	if a == AccelAuto {
		switch env := Accel(os.Getenv("YANK_ACCEL")); env {
		case AccelAuto:
		case AccelKVM, AccelTCG:
			a = env
		default:
			return "", fmt.Errorf("YANK_ACCEL=%q: want kvm or tcg", env)
		}
	}
	if a == AccelTCG {
		return a, nil
	}
	kvm, err := hostKVM()
	switch {
	case err != nil:
		return "", fmt.Errorf("accelerator: asking the host for KVM: %w", err)
	case kvm:
		return AccelKVM, nil
	case a == AccelKVM:
		return "", errors.New("accel kvm requested but the host cannot run KVM guests (/dev/kvm missing or not writable, or no VMX/SVM); use tcg or auto")
	}
	return AccelTCG, nil
}

// KVMUsable reports whether KVM can run guests here: /dev/kvm opens for
// read and write and the CPU advertises VMX or SVM. The second check matters:
// on this project's CI machines /dev/kvm exists but the CPU has neither flag,
// and a KVM guest there stalls early in boot instead of failing.
func KVMUsable() bool {
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !hasVirtFlag(string(cpuinfo)) {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func hasVirtFlag(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "flags") && (slices.Contains(f, "vmx") || slices.Contains(f, "svm")) {
			return true
		}
	}
	return false
}

// HotplugGuest is the standard yank guest: one virtio-blk disk "disk0" on
// the native-hotplug root port "rp1", backed by null-co behind a 2 MiB/s
// write throttle with a 4-entry single virtqueue, so that buffered
// writeback waits in the guest for tags rather than inside QEMU (the
// del_gendisk race recipe in docs/DESIGN.md).
func HotplugGuest(name, kernel, initrd string) Spec {
	return Spec{
		Name: name, Kernel: kernel, Initrd: initrd, PVPanic: true,
		RootPorts: []RootPort{{ID: "rp1"}},
		Disks: []Disk{{
			ID: "disk0", Port: "rp1", QueueSize: 4, NumQueues: 1,
			Throttle: Throttle{BpsWrite: 2 << 20},
		}},
	}
}
