package libvirt

import (
	"encoding/json"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"

	"github.com/yank-dev/yank/machine"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]struct {
		uri  string
		cap  int
		name string
	}{
		"qemu:///system":                      {"qemu:///system", 0, "qemu:///system"},
		"qemu+ssh://root@build2/system#4":     {"qemu+ssh://root@build2/system", 4, "qemu+ssh://build2/system"},
		"qemu:///system?socket=/tmp/x/sock#2": {"qemu:///system?socket=/tmp/x/sock", 2, "qemu:///system?socket=/tmp/x/sock"},
		"qemu+tcp://127.0.0.1:16509/system#1": {"qemu+tcp://127.0.0.1:16509/system", 1, "qemu+tcp://127.0.0.1:16509/system"},
	} {
		b, err := Parse(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if b.URI != want.uri || b.Capacity != want.cap || b.Name() != want.name {
			t.Errorf("%s: got uri %q cap %d name %q, want %+v", in, b.URI, b.Capacity, b.Name(), want)
		}
	}
	for _, bad := range []string{"http://host/", "qemu:///system#0", "qemu:///system#x", "/var/run/libvirt"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestDomainXML(t *testing.T) {
	spec := machine.HotplugGuest("g1", "/k", "/i")
	spec.RootPorts = append(spec.RootPorts, machine.RootPort{ID: "rp2"})
	spec.Disks = append(spec.Disks, machine.Disk{ID: "disk1", Port: "rp2"})
	spec.Append = "quiet a='b'"
	x, err := DomainXML(spec, DomainOptions{Name: "yank-g1", Accel: machine.AccelTCG, Kernel: "/pool/k", Initrd: "/pool/i", ConsoleLog: "/log/c.log"})
	if err != nil {
		t.Fatal(err)
	}
	var dom struct {
		Type string `xml:"type,attr"`
		Name string `xml:"name"`
		OS   struct {
			Loader  string `xml:"loader"`
			Kernel  string `xml:"kernel"`
			Cmdline string `xml:"cmdline"`
		} `xml:"os"`
		Controllers []struct {
			Type  string `xml:"type,attr"`
			Model string `xml:"model,attr"`
			Alias struct {
				Name string `xml:"name,attr"`
			} `xml:"alias"`
		} `xml:"devices>controller"`
		Args []struct {
			Value string `xml:"value,attr"`
		} `xml:"commandline>arg"`
	}
	if err := xml.Unmarshal([]byte(x), &dom); err != nil {
		t.Fatalf("not XML: %v\n%s", err, x)
	}
	if dom.Type != "qemu" || dom.Name != "yank-g1" || dom.OS.Kernel != "/pool/k" || dom.OS.Loader != machine.QbootROM {
		t.Errorf("domain basics wrong: %+v", dom)
	}
	if dom.OS.Cmdline != "console=ttyS0 panic=-1 quiet a='b'" {
		t.Errorf("cmdline %q", dom.OS.Cmdline)
	}
	var aliases []string
	for _, c := range dom.Controllers {
		if c.Model == "pcie-root-port" {
			aliases = append(aliases, c.Alias.Name)
		}
	}
	if strings.Join(aliases, ",") != "ua-rp1,ua-rp2" {
		t.Errorf("root port aliases %v", aliases)
	}
	var args []string
	for _, a := range dom.Args {
		args = append(args, a.Value)
	}
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
		"driver=null-co,node-name=null-disk0,size=1073741824,read-zeroes=on",
		"throttle-group,id=tg-disk0,x-bps-write=2097152",
		`{"driver":"virtio-blk-pci","id":"disk0","bus":"ua-rp1","drive":"thr-disk0","queue-size":4,"num-queues":1}`,
		`{"driver":"virtio-blk-pci","id":"disk1","bus":"ua-rp2","drive":"null-disk1"}`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("qemu:commandline lacks %s:\n%s", want, joined)
		}
	}
	// The same devices as before disks had a kind (commit 3f75e6b, which
	// rendered them from a map, keys sorted): only the key order moved.
	devs := jsonDevices(t, args)
	for i, old := range []string{
		`{"bus":"ua-rp1","drive":"thr-disk0","driver":"virtio-blk-pci","id":"disk0","num-queues":1,"queue-size":4}`,
		`{"bus":"ua-rp2","drive":"null-disk1","driver":"virtio-blk-pci","id":"disk1"}`,
	} {
		var want map[string]any
		json.Unmarshal([]byte(old), &want)
		if i >= len(devs) || !reflect.DeepEqual(devs[i], want) {
			t.Errorf("disk device %d: %v, want %v", i, devs, want)
		}
	}
	if _, err := DomainXML(spec, DomainOptions{Name: "x", Kernel: "/k", Initrd: "/i"}); err == nil {
		t.Error("unresolved accel accepted")
	}
}

// jsonDevices decodes the JSON -device values among args.
func jsonDevices(t *testing.T, args []string) []map[string]any {
	t.Helper()
	var devs []map[string]any
	for i, a := range args {
		if a != "-device" || i+1 == len(args) {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(args[i+1]), &d); err != nil {
			t.Fatalf("-device %s is not JSON: %v", args[i+1], err)
		}
		devs = append(devs, d)
	}
	return devs
}

func domainArgs(t *testing.T, spec machine.Spec) []string {
	t.Helper()
	x, err := DomainXML(spec, DomainOptions{Name: "yank-g", Accel: machine.AccelTCG, Kernel: "/k", Initrd: "/i"})
	if err != nil {
		t.Fatal(err)
	}
	var dom struct {
		Args []struct {
			Value string `xml:"value,attr"`
		} `xml:"commandline>arg"`
	}
	if err := xml.Unmarshal([]byte(x), &dom); err != nil {
		t.Fatalf("not XML: %v\n%s", err, x)
	}
	var args []string
	for _, a := range dom.Args {
		args = append(args, a.Value)
	}
	return args
}

// Each kind's devices, as JSON in <qemu:commandline>, on libvirt's alias
// of the root port, in the order machine.Disk.Devices gives (the scsi-hd
// after its controller: QEMU creates JSON devices in order).
func TestDomainXMLDiskKinds(t *testing.T) {
	for kind, want := range map[machine.DiskKind][]string{
		machine.DiskVirtioBlk: {`{"driver":"virtio-blk-pci","id":"disk0","bus":"ua-rp1","drive":"thr-disk0","queue-size":4,"num-queues":1}`},
		machine.DiskNVMe:      {`{"driver":"nvme","id":"disk0","bus":"ua-rp1","drive":"thr-disk0","serial":"yank-disk0","max_ioqpairs":1}`},
		machine.DiskVirtioSCSI: {
			`{"driver":"virtio-scsi-pci","id":"disk0","bus":"ua-rp1","virtqueue_size":4,"cmd_per_lun":4,"num_queues":1}`,
			`{"driver":"scsi-hd","id":"disk0-hd","bus":"disk0.0","drive":"thr-disk0"}`,
		},
	} {
		spec := machine.HotplugGuest("g", "/k", "/i")
		spec.Disks[0].Kind = kind
		args := domainArgs(t, spec)
		var got []string
		for i, a := range args {
			if a == "-device" {
				got = append(got, args[i+1])
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: devices\n%s\nwant\n%s", kind, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		jsonDevices(t, args)
		// The same devices as the local backend, bus aside.
		local := spec.Args(machine.Paths{}, machine.AccelTCG)
		for _, w := range spec.Disks[0].Devices("rp1") {
			if !strings.Contains(strings.Join(local, " "), "-device "+w.String()) {
				t.Errorf("%s: local argv lacks %s", kind, w)
			}
		}
		if !strings.Contains(strings.Join(args, " "), "driver=throttle,node-name=thr-disk0") {
			t.Errorf("%s: no throttle node: %q", kind, args)
		}
	}
	spec := machine.HotplugGuest("g", "/k", "/i")
	spec.Disks[0].Kind = "sata"
	if _, err := DomainXML(spec, DomainOptions{Name: "x", Accel: machine.AccelTCG, Kernel: "/k", Initrd: "/i"}); err == nil || !strings.Contains(err.Error(), `"sata"`) {
		t.Errorf("unknown kind: got %v, want an error naming it", err)
	}
}
