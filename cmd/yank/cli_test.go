package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// Bad input is rejected before anything is built or booted, with the
// input named; bisect-run's own errors exit 128 so git bisect stops
// instead of blaming the commit.
func TestBadCommandInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		exit int // 0: any non-nil error
	}{
		{[]string{"run", "-cpus", "0"}, "-cpus 0: want 1 to 8", 0},
		{[]string{"run", "-cpus", "9"}, "-cpus 9", 0},
		{[]string{"run", "-repeat", "0"}, "-repeat 0", 0},
		{[]string{"run", "-offsets", "1s,1s"}, "given twice", 0},
		{[]string{"run", "-offsets", "2m"}, "out of range", 0},
		{[]string{"run", "-offsets", "fast"}, `offset "fast"`, 0},
		{[]string{"run", "-scenarios", "unbind-rcae"}, "unbind-race", 0},
		{[]string{"run", "-scenarios", ","}, "-scenarios names none", 0},
		{[]string{"run", "-scenario-file", "/nonexistent.json"}, "-scenario-file: scenario file: open /nonexistent.json: no such file", 0},
		{[]string{"run", "-scenario-file", "testdata/bad-device.json"}, `-scenario-file: scenario file testdata/bad-device.json: scenario "mine": field "device": unknown device "sata" (known: nvme, virtio-blk, virtio-scsi)`, 0},
		{[]string{"run", "-scenario-file", "testdata/trigger-string.json"}, `scenario file testdata/trigger-string.json: scenario "mine": field "trigger_argv": got the string "sync -f /dev/vda": want an argv list`, 0},
		{[]string{"run", "-scenario-file", "testdata/offset-range.json"}, `scenario file testdata/offset-range.json: scenario "mine": field "offsets": [0]: offset 1m30s out of range`, 0},
		{[]string{"run", "-io-timeout", "5s", "-scenarios", "unbind-race"}, "-io-timeout: 5s: none of the scenarios' devices has an I/O timeout (devices with one: nvme)", 0},
		{[]string{"run", "-io-timeout", "1500ms", "-scenarios", "nvme-unbind-race"}, "whole seconds", 0},
		{[]string{"run", "-kernels", ""}, "-kernels is empty", 0},
		{[]string{"run", "-recovered-after", "-1s"}, "-recovered-after: recovered-after -1s: want 0 (the default, 3s) up to 10m", 0},
		{[]string{"run", "-stall-window", "200ms"}, "stall window 200ms: want at least 3 probe intervals", 0},
		{[]string{"bisect-run", "-recovered-after", "11m"}, "recovered-after 11m0s", bisectAbort},
		{[]string{"run", "extra"}, `unexpected argument "extra"`, 0},
		{[]string{"run", "-kernels", "rfc-v4"}, `unknown variant "rfc-v4" (known: stock, rfc-v3`, 0},
		{[]string{"run", "-kernels", "stock+/nonexistent.patch"}, "series /nonexistent.patch: no such file", 0},
		{[]string{"run", "-kernels", "/nonexistent/bzImage"}, "no such file or directory", 0},
		{[]string{"run", "-kernels", "a b=stock"}, "plain word", 0},
		{[]string{"run", "-variants", "/nonexistent.json"}, "variants file /nonexistent.json", 0},
		{[]string{"kernel", "build", "debian+/tmp"}, "debian is prebuilt", 0},
		{[]string{"kernel", "build", "stock", "rfc-v3"}, "need one kernel", 0},
		{[]string{"kernel", "gc", "-keep", "soon"}, `-keep "soon"`, 0},
		{[]string{"kernel", "frob"}, `unknown subcommand "frob"`, 0},
		{[]string{"libvirt", "-host", "qemu:///system", "-cpus", "0"}, "-cpus 0", 0},
		{[]string{"bisect-run", "-trials", "0"}, "-trials 0", bisectAbort},
		{[]string{"bisect-run", "-scenario", "nope"}, "unknown scenario", bisectAbort},
		{[]string{"bisect-run", "-scenario-file", "testdata/bad-device.json"}, `field "device": unknown device "sata"`, bisectAbort},
		{[]string{"bisect-run", "-scenario", "unbind-race", "-io-timeout", "5s"}, "none of the scenarios' devices has an I/O timeout", bisectAbort},
		{[]string{"bisect-run", "-offset", "-1s", "-cut-at", "offset"}, "out of range", bisectAbort},
		{[]string{"bisect-run", "-offset", "20s"}, "delay 20s after anchor del_gendisk: want 0s to 10s", bisectAbort},
		{[]string{"bisect-run", "-offset", "soon"}, `-offset "soon"`, bisectAbort},
		{[]string{"bisect-run", "-cut-at", "del_gendisk+0xZZ"}, `-cut-at: anchor "del_gendisk+0xZZ": want SYMBOL`, bisectAbort},
		{[]string{"bisect-run", "-anchor-budget", "11m"}, "-anchor-budget: anchor budget 11m0s", bisectAbort},
		{[]string{"run", "-cut-at", "x@0"}, `hit @0: want 1 to 1000`, 0},
		{[]string{"run", "-cut-at", "del gendisk"}, `-cut-at: anchor "del gendisk": want SYMBOL`, 0},
		{[]string{"run", "-offsets", "20s", "-scenarios", "unbind-race"}, "delay 20s after anchor del_gendisk: want 0s to 10s (-offsets are delays after the anchor; -cut-at offset cuts at offsets after T0)", 0},
		{[]string{"run", "-anchor-budget", "-1s"}, "-anchor-budget", 0},
		{[]string{"map", "-kernels", "stock"}, "name the kernels and the scenario", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "surprise-idle"}, "scenario surprise-idle has no anchor (cut_at)", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "unbind-race", "-max-delay", "20s"}, "max delay 20s", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "unbind-race", "-resolution", "0s"}, "-resolution 0s", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "unbind-race", "-resolution", "500us"}, "resolution 500µs: want 1ms or more", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "unbind-race", "-max-trials", "3"}, "max trials 3", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "unbind-race", "-cut-at", "x+0xZZ"}, "-cut-at", 0},
		{[]string{"map", "-kernels", "stock", "-scenario", "nope"}, "unknown scenario", 0},
		{[]string{"libvirt", "-host", "qemu:///system", "-cut-at", "a+b"}, "-cut-at", 0},
		{[]string{"run", "-scenario-file", "testdata/cut-delays-without-anchor.json"}, `field "cut_delays": given without cut_at`, 0},
		{[]string{"run", "-scenario-file", "testdata/cut-at-bad.json"}, `field "cut_at": anchor "del_gendisk+16"`, 0},
		{[]string{"bisect-run", "-tree", "/nonexistent"}, "not a git tree", bisectAbort},
		{[]string{"bisect-run", "-no-such-flag"}, "no-such-flag", bisectAbort},
		{[]string{"bisect-run", "-patches", "rfc-v4"}, "neither a variant", bisectAbort},
		{[]string{"bisect-run", "-patches", "/nonexistent.mbx"}, "no such file", bisectAbort},
		{[]string{"run", "-shard", "3/2"}, `-shard "3/2": shard numbers run from 1 to 2`, 0},
		{[]string{"run", "-shard", "0/2"}, `-shard "0/2": shard numbers run from 1 to 2`, 0},
		{[]string{"libvirt", "-host", "qemu:///system", "-shard", "a/b"}, `-shard "a/b": want K/N`, 0},
		{[]string{"report", "merge"}, "give the artifacts dir of every shard", 0},
		{[]string{"report", "merge", "/nonexistent"}, "/nonexistent", 0},
		{[]string{"report", "-table", "/nonexistent"}, "report: -table: open /nonexistent", 0},
		{[]string{"run", "-kcidb", "k.json", "-kcidb-origin", "My-CI"}, `-kcidb-origin: KCIDB origin "My-CI": want lower-case letters`, 0},
		{[]string{"report", "merge", "-kcidb-origin", "a:b", "x"}, `-kcidb-origin: KCIDB origin "a:b"`, 0},
		{[]string{"kernel", "export", "stock"}, "give -o FILE.tar.gz", 0},
		{[]string{"kernel", "import"}, "give one tarball", 0},
		{[]string{"kernel", "import", "/nonexistent.tar.gz"}, "kernel import: open /nonexistent.tar.gz", 0},
	} {
		var out, errOut bytes.Buffer
		err := dispatch(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error()+errOut.String(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
			continue
		}
		if tc.exit != 0 {
			var ec exitCoder
			if !errors.As(err, &ec) || ec.ExitCode() != tc.exit {
				t.Errorf("%v: exit code of %v: want %d", tc.args, err, tc.exit)
			}
		}
	}
}
