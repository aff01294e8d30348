package machine

import (
	"strings"
	"testing"
)

func TestArgsCarryTheRecipe(t *testing.T) {
	s := HotplugGuest("g", "/k", "/i")
	args := strings.Join(s.Args(pathsIn("/run/x"), AccelTCG), " ")
	for _, want := range []string{
		"-machine q35,accel=tcg",
		"-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
		"pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1",
		"throttle-group,id=tg-disk0,x-bps-write=2097152",
		"driver=throttle,node-name=thr-disk0,throttle-group=tg-disk0,file=null-disk0",
		"virtio-blk-pci,id=disk0,bus=rp1,drive=thr-disk0,queue-size=4,num-queues=1",
		"virtserialport,bus=vser0.0,chardev=qga0,name=" + AgentPortName,
		"path=/run/x/qmp.sock", "-bios " + QbootROM, "-device pvpanic", "-cpu max",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	if !strings.Contains(strings.Join(s.Args(pathsIn("/r"), AccelKVM), " "), "-cpu host") {
		t.Error("KVM guests should use -cpu host")
	}
	s.Disks[0].Throttle = Throttle{}
	if a := strings.Join(s.Args(pathsIn("/r"), AccelTCG), " "); strings.Contains(a, "throttle") || !strings.Contains(a, "drive=null-disk0") {
		t.Errorf("unthrottled disk: %s", a)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	base := HotplugGuest("g", "/etc/hostname", "/etc/hostname")
	for name, tc := range map[string]struct {
		mutate func(*Spec)
		want   string
	}{
		"no kernel":      {func(s *Spec) { s.Kernel = "" }, "Kernel is empty"},
		"missing initrd": {func(s *Spec) { s.Initrd = "/nope" }, "initrd /nope"},
		"bad accel":      {func(s *Spec) { s.Accel = "hvf" }, `accel "hvf"`},
		"shared port":    {func(s *Spec) { s.Disks = append(s.Disks, Disk{ID: "disk1", Port: "rp1"}) }, "share root port"},
		"dup id":         {func(s *Spec) { s.Disks[0].ID = "rp1" }, `ID "rp1"`},
		"comma id":       {func(s *Spec) { s.RootPorts[0].ID = "a,b"; s.Disks[0].Port = "a,b" }, "contains ','"},
	} {
		s := base
		s.Disks = append([]Disk(nil), base.Disks...)
		s.RootPorts = append([]RootPort(nil), base.RootPorts...)
		tc.mutate(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.want)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestHasVirtFlag(t *testing.T) {
	if hasVirtFlag("flags\t\t: fpu vme de pse\n") || !hasVirtFlag("flags\t\t: fpu vmx sse\n") || !hasVirtFlag("flags : svm\n") {
		t.Fatal("hasVirtFlag misreads /proc/cpuinfo")
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"/usr/bin/qemu", "-append", "console=ttyS0 a='b'", "", "-m", "512"})
	if want := `/usr/bin/qemu -append 'console=ttyS0 a='\''b'\''' '' -m 512`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
