package scenario

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/journal"
)

func TestCatalog(t *testing.T) {
	for _, name := range []string{"unbind-race", "surprise-io", "surprise-idle", "graceful-io"} {
		if _, err := Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Lookup("unbind-rcae")
	if err == nil || !strings.Contains(err.Error(), "unbind-race") {
		t.Fatalf("unknown scenario error should list the known ones: %v", err)
	}
	bad := []string{
		`{"scenarios":[{"name":"x","trigger":"reboot","removal":"surprise","io":"none"}]}`,
		`{"scenarios":[{"name":"x","trigger":"none","removal":"yank","io":"none"}]}`,
		`{"scenarios":[{"name":"x","trigger":"none","removal":"surprise","io":"none","offsets":["-1s"]}]}`,
		`{"scenarios":[{"name":"x","trigger":"none","removal":"surprise","io":"none","offsets":["2m"]}]}`,
		`{"scenarios":[{"name":"x","trigger":"none","removal":"surprise","io":"none","offsets":[2]}]}`,
		`{"scenarios":[{"name":"x","trigger":"none","removal":"surprise","io":"none"},{"name":"x","trigger":"none","removal":"surprise","io":"none"}]}`,
	}
	for _, b := range bad {
		if _, err := LoadCatalog([]byte(b)); err == nil {
			t.Errorf("accepted bad catalog %s", b)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	ok := Params{Offset: 2 * time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{Offset: -time.Second}, {Offset: 61 * time.Second}, {QueueSize: 3}, {NumQueues: -1},
		{WriteMB: 1000}, {DirtyRatio: 101}, {CPUs: 99}, {StallWindow: -1},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("accepted %+v", p)
		}
	}
	d := Params{}.WithDefaults()
	if d.QueueSize != 4 || d.NumQueues != 1 || d.ThrottleBps != 2<<20 || d.WriteMB != 48 || d.CPUs != 2 {
		t.Fatalf("defaults drifted from the DESIGN recipe: %+v", d)
	}
}

func TestParseProbe(t *testing.T) {
	out := `dev gone
trig running
stat 3 0 24 4 583 587 9312 5752 4 6404 5756 0 0 0 0 0 0
up 5.43
task 60 240 blk_mq_get_tag sh
task 21 31 device_release_driver_internal irq/24-pciehp
task 7 1012 blk_mq_get_tag kworker/u2:0+flush-254:0
`
	st, err := ParseProbe(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.DevicePresent || st.Trigger != "running" || st.Completions != "3/583/4" || len(st.DTasks) != 3 {
		t.Fatalf("got %+v", st)
	}
	if st.DTasks[21].Comm != "irq/24-pciehp" || st.DTasks[60].WChan != "blk_mq_get_tag" || st.DTasks[60].CtxtSwitches[1] != 240 {
		t.Fatalf("tasks: %+v", st.DTasks)
	}
	if st.Uptime != Duration(5430*time.Millisecond) {
		t.Fatalf("uptime %s", st.Uptime)
	}
	st, err = ParseProbe("dev present\ntrig none\nstat none\nup 1.00\n")
	if err != nil || !st.DevicePresent || st.Completions != "" {
		t.Fatalf("got %+v %v", st, err)
	}
	for _, bad := range []string{"dev present\n", "dev present\ntrig none\nstat none\n", "dev present\ntrig none\nstat none\nup x\n"} {
		if _, err := ParseProbe(bad); err == nil {
			t.Errorf("accepted a bad probe %q", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	unbind := Task{PID: 60, Comm: "sh", Role: "trigger:unbind", Stack: []string{"blk_mq_get_tag+0xed/0x1b6", "del_gendisk+0x81/0x223", "unbind_store+0x1/0x2"}}
	pciehpLock := Task{PID: 21, Comm: "irq/24-pciehp", Role: "pciehp", Stack: []string{"device_release_driver_internal+0x15/0x111"}}
	pciehpDG := Task{PID: 21, Comm: "irq/24-pciehp", Role: "pciehp", Stack: []string{"blk_mq_freeze_queue_wait+0x1/0x2", "del_gendisk+0x1/0x2"}}
	sync := Task{PID: 66, Comm: "sync", Role: "trigger:sync", Stack: []string{"wb_wait_for_completion+0x1/0x2"}}
	for _, tc := range []struct {
		tasks []Task
		class string
		pid   int
	}{
		{[]Task{pciehpLock, unbind}, "unbind-del_gendisk", 60},
		{[]Task{sync, pciehpDG}, "pciehp-del_gendisk", 21},
		{[]Task{sync}, "other-d-state", 66},
	} {
		class, primary := Classify(tc.tasks, []string{"del_gendisk"})
		if class != tc.class || primary.PID != tc.pid {
			t.Errorf("got %s/%d, want %s/%d", class, primary.PID, tc.class, tc.pid)
		}
	}
	// Several waits (virtio-scsi's): the innermost frame that is one of
	// them names the class; a user's command trigger is named by its kind.
	scsi := devices["virtio-scsi"].RemoveWaits
	flush := Task{PID: 70, Comm: "sh", Role: "trigger:command", Stack: []string{"blk_execute_rq+0x1/0x2", "sd_sync_cache+0x1/0x2", "sd_remove+0x1/0x2"}}
	for _, tc := range []struct {
		tasks []Task
		class string
		pid   int
	}{
		{[]Task{pciehpLock, flush}, "command-blk_execute_rq", 70},
		{[]Task{pciehpDG}, "pciehp-blk_mq_freeze_queue_wait", 21},
		{[]Task{pciehpLock}, "other-d-state", 21},
	} {
		if class, primary := Classify(tc.tasks, scsi); class != tc.class || primary.PID != tc.pid {
			t.Errorf("virtio-scsi: got %s/%d, want %s/%d", class, primary.PID, tc.class, tc.pid)
		}
	}
}

func TestScanConsole(t *testing.T) {
	j := journal.New[string]()
	for _, l := range []string{
		"[    1.0] pcieport 0000:00:02.0: pciehp: Slot(1): Card not present",
		"[    2.0] INFO: task sh:60 blocked for more than 2 seconds.",
		"[    2.1] WARNING: CPU: 0 PID: 21 at drivers/virtio/virtio_ring.c:123 vring_foo+0x1/0x2",
		"[    2.2] ---[ end trace 0000000000000000 ]---",
		"[    3.0] BUG: kernel NULL pointer dereference, address: 0000000000000008",
		"[    3.1] #PF: supervisor read access in kernel mode",
	} {
		j.Append(l)
	}
	crash, warns, hung := ScanConsole(j.Snapshot())
	if crash == nil || !strings.HasPrefix(crash.Line, "BUG: kernel NULL pointer") || !strings.Contains(crash.Text, "#PF") {
		t.Fatalf("crash: %+v", crash)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Text, "end trace") {
		t.Fatalf("warns: %+v", warns)
	}
	if _, ok := hung[60]; !ok || len(hung) != 1 {
		t.Fatalf("hung: %v", hung)
	}
	clean := journal.New[string]()
	clean.Append("[ 1.0] I/O error, dev vda, sector 9152 op 0x1:(WRITE)")
	clean.Append("[ 1.0] YANK-T0 trigger=sync pid=60")
	if crash, warns, _ := ScanConsole(clean.Snapshot()); crash != nil || len(warns) != 0 {
		t.Fatalf("false positive: %+v %+v", crash, warns)
	}
}

func TestVerdictJSON(t *testing.T) {
	v := Verdict{Outcome: Hang, Classification: "unbind-del_gendisk", RequestedOffset: Duration(2 * time.Second),
		StuckTask: &Task{PID: 60, Comm: "sh", WChan: "blk_mq_get_tag"}, Params: Params{}.WithDefaults()}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"outcome":"HANG"`, `"requested_offset":"2s"`, `"StallWindow":"1s"`, `"classification":"unbind-del_gendisk"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("verdict JSON lacks %s: %s", want, b)
		}
	}
	var back Verdict
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Params != v.Params || back.Outcome != Hang || back.StuckTask.PID != 60 || back.RequestedOffset != v.RequestedOffset {
		t.Fatalf("verdict JSON does not round-trip: %+v", back)
	}
	if !strings.Contains(v.Summary(), "sh (pid 60)") {
		t.Errorf("summary: %s", v.Summary())
	}
}
