package libvirt

import (
	"encoding/xml"
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
		`{"bus":"ua-rp1","drive":"thr-disk0","driver":"virtio-blk-pci","id":"disk0","num-queues":1,"queue-size":4}`,
		`{"bus":"ua-rp2","drive":"null-disk1","driver":"virtio-blk-pci","id":"disk1"}`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("qemu:commandline lacks %s:\n%s", want, joined)
		}
	}
	if _, err := DomainXML(spec, DomainOptions{Name: "x", Kernel: "/k", Initrd: "/i"}); err == nil {
		t.Error("unresolved accel accepted")
	}
}
