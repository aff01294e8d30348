package scenario

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestExamplesLoad: the documented examples are valid scenario files
// whose scenarios do not clash with the built-in ones.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("examples/*.json")
	if len(files) < 2 {
		t.Fatalf("want at least 2 examples, found %v", files)
	}
	for _, f := range files {
		list, err := LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if _, err := Lookup(s.Name); err == nil {
				t.Errorf("%s: scenario %q clashes with a built-in one", f, s.Name)
			}
			if s.Source != f || s.Description == "" {
				t.Errorf("%s: %+v", f, s)
			}
			if s.Trigger != TriggerCommand {
				t.Errorf("%s: %s: trigger %q, want command (implied by trigger_argv)", f, s.Name, s.Trigger)
			}
		}
	}
}

// TestBadScenarioFiles: each mistake is refused with the file, the
// scenario and the field named, and what to write instead.
func TestBadScenarioFiles(t *testing.T) {
	good := `{"name": "x", "device": "nvme", "trigger_argv": ["sync"], "removal": "surprise", "io": "buffered", "offsets": ["1s"], "window": {"io": "outstanding"}}`
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown device", strings.Replace(good, `"nvme"`, `"sata"`, 1),
			[]string{`scenario "x": field "device": unknown device "sata" (known: nvme, virtio-blk, virtio-scsi)`}},
		{"a trigger given as one string", strings.Replace(good, `["sync"]`, `"sync -f /dev/vda"`, 1),
			[]string{`scenario "x": field "trigger_argv": got the string "sync -f /dev/vda": want an argv list`, `["sh", "-c", "sync -f /dev/vda"]`}},
		{"a command given as the trigger", strings.Replace(good, `"trigger_argv": ["sync"]`, `"trigger": "echo 1 > /sys/bus/pci/rescan"`, 1),
			[]string{`scenario "x": field "trigger": unknown trigger "echo 1 > /sys/bus/pci/rescan"`, "argv list in trigger_argv"}},
		{"an offset out of range", strings.Replace(good, `["1s"]`, `["1s", "90s"]`, 1),
			[]string{`scenario "x": field "offsets": [1]: offset 1m30s out of range: want 0s to 1m0s`}},
		{"an offset that is no duration", strings.Replace(good, `["1s"]`, `[2]`, 1),
			[]string{`scenario "x": field "offsets": duration must be a string like "1.5s"`}},
		{"a misspelt field", strings.Replace(good, `"removal"`, `"remove"`, 1),
			[]string{`scenario "x": field "remove": unknown field (known: `}},
		{"a misspelt window field", strings.Replace(good, `{"io": "outstanding"}`, `{"iio": "outstanding"}`, 1),
			[]string{`scenario "x": field "window": json: unknown field "iio"`}},
		{"removing without an unbind", strings.Replace(strings.Replace(good, `"trigger_argv": ["sync"]`, `"trigger": "sync"`, 1), `{"io": "outstanding"}`, `{"trigger": "removing"}`, 1),
			[]string{`scenario "x": field "window": window.trigger "removing" (inside nvme's remove()) needs trigger unbind or command, not sync`}},
		{"an empty argv", strings.Replace(good, `["sync"]`, `[]`, 1),
			[]string{`scenario "x": field "trigger": missing: want unbind, sync or none, or a non-empty trigger_argv list`}},
		{"a built-in name", strings.Replace(good, `"x"`, `"unbind-race"`, 1),
			[]string{`scenario "unbind-race": field "name": already a built-in scenario; rename it`}},
		{"no name", strings.Replace(good, `"name": "x", `, ``, 1),
			[]string{`scenario #1: field "name": missing`}},
		{"an argv with a built-in trigger", strings.Replace(good, `"trigger_argv"`, `"trigger": "unbind", "trigger_argv"`, 1),
			[]string{`field "trigger_argv": given with trigger "unbind"`}},
		{"a load_argv with a built-in io", strings.Replace(good, `"io": "buffered"`, `"io": "buffered", "load_argv": ["dd"]`, 1),
			[]string{`field "load_argv": given with io "buffered"`}},
		{"load_background without a load", strings.Replace(good, `"io": "buffered"`, `"io": "buffered", "load_background": true`, 1),
			[]string{`field "load_background": only for io "command"`}},
		{"hang_after too short", strings.Replace(good, `"io": "buffered"`, `"io": "buffered", "hang_after": "1s"`, 1),
			[]string{`field "hang_after": 1s: want 3s to 10m`}},
		{"a name that cannot name a dir", strings.Replace(good, `"x"`, `"my/scenario"`, 1),
			[]string{`field "name": "my/scenario": use letters, digits`}},
		{"a pattern for a function name", strings.Replace(good, `{"io": "outstanding"}`, `{"trigger": "running", "trigger_in": ["del_*"]}`, 1),
			[]string{`field "window": window.trigger_in "del_*": want a kernel function name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "mine.json")
			if err := os.WriteFile(f, []byte(`{"scenarios": [`+tc.body+`]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := AddFile(f)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range append([]string{"scenario file " + f + ": "}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n lacks %q", err, w)
				}
			}
		})
	}
}

// TestAddFileJoinsTheCatalog: a file's scenarios are found by Lookup,
// keep their source, and loading the same file again adds nothing.
func TestAddFileJoinsTheCatalog(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mine.json")
	body := `{"scenarios": [{"name": "mine-unbind", "device": "virtio-scsi", "trigger": "unbind", "removal": "surprise", "io": "buffered", "offsets": ["2s"], "window": {"trigger": "removing"}}]}`
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		list, err := AddFile(f)
		if err != nil || len(list) != 1 {
			t.Fatalf("load %d: %v %v", i, list, err)
		}
	}
	s, err := Lookup("mine-unbind")
	if err != nil || s.Source != f {
		t.Fatalf("%+v %v", s, err)
	}
	if w := s.WindowWant(); w.Trigger != WindowRunning || len(w.TriggerIn) == 0 || !slices.Equal(w.TriggerIn, devices["virtio-scsi"].RemoveWaits) {
		t.Fatalf("removing on virtio-scsi: %+v", w)
	}
	for _, d := range DefaultNames() {
		if d == "mine-unbind" || strings.HasPrefix(d, "nvme-") {
			t.Errorf("defaults hold %s", d)
		}
	}
}

// TestDeviceParams: knobs a device cannot take are refused before a
// guest boots, naming the knob and the device.
func TestDeviceParams(t *testing.T) {
	for _, tc := range []struct {
		dev  string
		p    Params
		want string
	}{
		{"virtio-blk", Params{QueueSize: 2}, "queue size 2: virtio-blk needs at least 4"},
		{"nvme", Params{QueueSize: 1}, ""},
		{"nvme", Params{IOTimeout: 1500 * time.Millisecond}, "io-timeout 1.5s: nvme_core.io_timeout takes whole seconds"},
		{"virtio-scsi", Params{IOTimeout: 5 * time.Second}, ""}, // applies only where there is one
	} {
		err := devices[tc.dev].CheckParams(tc.p)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %+v: %v, want %q", tc.dev, tc.p, err, tc.want)
		}
	}
	if got := devices["nvme"].KernelArgs(Params{QueueSize: 4, IOTimeout: 7 * time.Second}); strings.Join(got, " ") != "nvme_core.io_timeout=7 nvme.io_queue_depth=5" {
		t.Errorf("nvme kernel args: %q", got)
	}
	if got := devices["virtio-blk"].KernelArgs(Params{QueueSize: 4}); len(got) != 0 {
		t.Errorf("virtio-blk kernel args: %q", got)
	}
}
