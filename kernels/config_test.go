package kernels

import (
	"errors"
	"strings"
	"testing"
)

func TestMergeConfigOverrides(t *testing.T) {
	base := "CONFIG_A=y\n# CONFIG_64BIT is not set\nCONFIG_KEEP=y\nCONFIG_S=\"old\"\n"
	frag := "# comment\nCONFIG_64BIT=y\n# CONFIG_A is not set\nCONFIG_S=\"new\"\n"
	out, err := MergeConfig([]byte(base), []byte(frag))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ParseConfig(out)
	want := map[string]string{"CONFIG_A": "", "CONFIG_64BIT": "y", "CONFIG_KEEP": "y", "CONFIG_S": `"new"`}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for _, o := range got {
		if want[o.Name] != o.Value {
			t.Errorf("%s = %q, want %q", o.Name, o.Value, want[o.Name])
		}
	}
	if strings.Count(string(out), "CONFIG_64BIT") != 1 {
		t.Errorf("duplicate lines:\n%s", out)
	}
}

func TestMissingOptionsListed(t *testing.T) {
	frag := "CONFIG_PCI=y\nCONFIG_HOTPLUG_PCI_PCIE=y\nCONFIG_UNWINDER_ORC=y\n# CONFIG_MODULES is not set\nCONFIG_NR_CPUS=8\n"
	final := "CONFIG_PCI=y\n# CONFIG_HOTPLUG_PCI_PCIE is not set\nCONFIG_MODULES=y\nCONFIG_NR_CPUS=64\n"
	err := verifyConfig([]byte(final), []byte(frag))
	var me *MissingOptionsError
	if !errors.As(err, &me) {
		t.Fatalf("want MissingOptionsError, got %v", err)
	}
	var names []string
	for _, o := range me.Missing {
		names = append(names, o.Name)
	}
	if strings.Join(names, " ") != "CONFIG_HOTPLUG_PCI_PCIE CONFIG_UNWINDER_ORC CONFIG_MODULES CONFIG_NR_CPUS" {
		t.Errorf("missing = %v", names)
	}
	msg := err.Error()
	for _, want := range []string{"want CONFIG_HOTPLUG_PCI_PCIE=y, have unset", "want CONFIG_NR_CPUS=8, have 64", "want # CONFIG_MODULES is not set, have y"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if err := verifyConfig([]byte(final+"CONFIG_HOTPLUG_PCI_PCIE=y\nCONFIG_UNWINDER_ORC=y\n# CONFIG_MODULES is not set\nCONFIG_NR_CPUS=8\n"), []byte(frag)); err != nil {
		t.Errorf("complete config rejected: %v", err)
	}
}

func TestParseConfigRejectsGarbage(t *testing.T) {
	for _, bad := range []string{"CONFIG_X\n", "PCI=y\n", "CONFIG_X=\n"} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The list of what the scenarios need; the fragment must ask for
// all of it (the build then verifies the final .config has it).
func TestFragmentHasRequiredOptions(t *testing.T) {
	opts, err := ParseConfig(Fragment())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, o := range opts {
		have[o.Name] = o.Value
	}
	for _, n := range strings.Fields(`64BIT SMP PCI PCIEPORTBUS HOTPLUG_PCI HOTPLUG_PCI_PCIE ACPI
		VIRTIO_PCI VIRTIO_BLK VIRTIO_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS DEVTMPFS_MOUNT
		PROC_FS SYSFS TTY SERIAL_8250 SERIAL_8250_CONSOLE PRINTK BINFMT_ELF BINFMT_SCRIPT
		FUTEX EPOLL SIGNALFD TIMERFD EVENTFD SHMEM UNIX INOTIFY_USER MULTIUSER FILE_LOCKING
		DETECT_HUNG_TASK MAGIC_SYSRQ STACKTRACE KALLSYMS KALLSYMS_ALL UNWINDER_ORC
		PVPANIC PVPANIC_PCI BLOCK PROC_SYSCTL`) {
		if have["CONFIG_"+n] != "y" {
			t.Errorf("fragment lacks CONFIG_%s=y", n)
		}
	}
}
