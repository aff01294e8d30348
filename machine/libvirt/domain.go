package libvirt

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/yank-dev/yank/machine"
)

// DomainOptions are the parts of a libvirt domain that are not in the Spec.
type DomainOptions struct {
	Name       string        // libvirt domain name (unique on the host)
	Accel      machine.Accel // resolved: AccelKVM or AccelTCG
	Kernel     string        // kernel and initramfs paths on the libvirt host
	Initrd     string
	ConsoleLog string // host file the serial console is logged to
}

// DomainXML returns the libvirt domain for spec: the same guest as
// spec.Args gives machine.Local.
//
// In libvirt XML: q35, memory and vCPUs, direct kernel boot with the
// command line, qboot as a ROM loader, ACPI, the CPU model (maximum on TCG,
// host-passthrough on KVM), the pcie-root-port controllers (with user
// aliases "ua-<ID>", which libvirt requires for user-chosen qdev ids, so
// SurpriseResult.PortID reads "ua-rp1" here and "rp1" locally), the
// virtio-serial controller on the root bus with the agent channel, the
// serial console on a pty logged to ConsoleLog, pvpanic, and
// on_poweroff/reboot/crash = destroy (QEMU's -no-reboot and exit on panic).
//
// In <qemu:commandline>, because libvirt 9.0 has no XML for them:
//   - -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off, so native
//     pciehp owns the slots (libvirt only learned <acpi-bridge-hotplug>
//     later);
//   - the null-co blockdev, the throttle-group object and the throttle
//     filter node (libvirt has neither a null-co source nor throttle
//     filters; its <iotune> is the legacy per-drive throttling);
//   - the disk's devices (machine.Disk.Devices: virtio-blk-pci, nvme, or
//     virtio-scsi-pci and its scsi-hd), as JSON in their order: QEMU
//     creates key=value -device options before JSON ones, and libvirt
//     writes its devices (the root port) as JSON, so a key=value device
//     could not sit on the port. The device on the port has the Spec's
//     qdev id (disk0) and the port's alias as bus: libvirt does not know
//     the device, which is what yank wants, as the removal is done from
//     QMP.
//   - Spec.ExtraArgs.
func DomainXML(spec machine.Spec, o DomainOptions) (string, error) {
	s := spec.WithDefaults()
	if o.Name == "" || o.Kernel == "" || o.Initrd == "" {
		return "", fmt.Errorf("domain XML: name, kernel and initrd are required")
	}
	domType, cpu := "qemu", `<cpu mode='maximum' check='none'/>`
	switch o.Accel {
	case machine.AccelKVM:
		domType, cpu = "kvm", `<cpu mode='host-passthrough' check='none'/>`
	case machine.AccelTCG:
	default:
		return "", fmt.Errorf("domain XML: accelerator %q not resolved", o.Accel)
	}
	for _, d := range s.Disks {
		if !slices.Contains(machine.DiskKinds(), d.Kind) {
			return "", fmt.Errorf("domain XML: disk %q has unknown kind %q", d.ID, d.Kind)
		}
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w(`<domain type='%s' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>`, domType)
	w(`  <name>%s</name>`, esc(o.Name))
	w(`  <description>yank guest %s</description>`, esc(s.Name))
	w(`  <memory unit='MiB'>%d</memory>`, s.MemoryMB)
	w(`  <vcpu>%d</vcpu>`, s.CPUs)
	w(`  <os>`)
	w(`    <type arch='x86_64' machine='q35'>hvm</type>`)
	if s.Firmware == machine.FirmwareQboot {
		w(`    <loader type='rom'>%s</loader>`, esc(machine.QbootROM))
	}
	w(`    <kernel>%s</kernel>`, esc(o.Kernel))
	w(`    <initrd>%s</initrd>`, esc(o.Initrd))
	w(`    <cmdline>%s</cmdline>`, esc(strings.TrimSpace("console=ttyS0 panic=-1 "+s.Append)))
	w(`  </os>`)
	w(`  <features><acpi/><apic/></features>`)
	w(`  %s`, cpu)
	w(`  <clock offset='utc'/>`)
	w(`  <on_poweroff>destroy</on_poweroff>`)
	w(`  <on_reboot>destroy</on_reboot>`)
	w(`  <on_crash>destroy</on_crash>`)
	w(`  <devices>`)
	if filepath.IsAbs(s.QEMU) {
		w(`    <emulator>%s</emulator>`, esc(s.QEMU))
	}
	w(`    <controller type='usb' model='none'/>`)
	w(`    <controller type='pci' index='0' model='pcie-root'/>`)
	// Same layout as the local backend: the agent's virtio-serial at
	// 00:01.0 on the root bus (it never goes away with a slot), the root
	// ports from 00:02.0, so the first port's device is 01:00.0.
	w(`    <controller type='virtio-serial' index='0'>`)
	w(`      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>`)
	w(`    </controller>`)
	for i, rp := range s.RootPorts {
		w(`    <controller type='pci' index='%d' model='pcie-root-port'>`, i+1)
		w(`      <model name='pcie-root-port'/>`)
		w(`      <target chassis='%d' port='%#x' hotplug='on'/>`, rp.Chassis, 0x10+i)
		w(`      <alias name='%s'/>`, esc(libvirtAlias(rp.ID)))
		w(`      <address type='pci' domain='0x0000' bus='0x00' slot='%#x' function='0x0'/>`, 2+i)
		w(`    </controller>`)
	}
	w(`    <serial type='pty'>`)
	if o.ConsoleLog != "" {
		w(`      <log file='%s' append='off'/>`, esc(o.ConsoleLog))
	}
	w(`      <target type='isa-serial' port='0'><model name='isa-serial'/></target>`)
	w(`    </serial>`)
	w(`    <console type='pty'><target type='serial' port='0'/></console>`)
	w(`    <channel type='unix'>`)
	w(`      <source mode='bind'/>`)
	w(`      <target type='virtio' name='%s'/>`, machine.AgentPortName)
	w(`      <address type='virtio-serial' controller='0' bus='0' port='1'/>`)
	w(`    </channel>`)
	if s.PVPanic {
		w(`    <panic model='isa'/>`)
	}
	w(`    <memballoon model='none'/>`)
	w(`  </devices>`)
	qemuArgs, err := libvirtQEMUArgs(s)
	if err != nil {
		return "", fmt.Errorf("domain XML: %w", err)
	}
	w(`  <qemu:commandline>`)
	for _, a := range qemuArgs {
		w(`    <qemu:arg value='%s'/>`, esc(a))
	}
	w(`  </qemu:commandline>`)
	w(`</domain>`)
	return b.String(), nil
}

// libvirtAlias is the qdev id libvirt gives a device with a user alias.
func libvirtAlias(id string) string { return "ua-" + id }

// libvirtQEMUArgs are the QEMU arguments libvirt has no XML for.
func libvirtQEMUArgs(s machine.Spec) ([]string, error) {
	a := []string{"-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"}
	ports := map[string]string{}
	for _, rp := range s.RootPorts {
		ports[rp.ID] = libvirtAlias(rp.ID)
	}
	for _, d := range s.Disks {
		backend, _ := d.BlockdevArgs()
		a = append(a, backend...)
		for _, dev := range d.Devices(ports[d.Port]) {
			j, err := json.Marshal(dev)
			if err != nil {
				return nil, err
			}
			a = append(a, "-device", string(j))
		}
	}
	return append(a, s.ExtraArgs...), nil
}

func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}
