package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

// verdict makes a realistic verdict; dir, if set, gets its evidence files.
func verdict(t *testing.T, kernel, sc string, offset time.Duration, o scenario.Outcome, dir string) scenario.Verdict {
	v := scenario.Verdict{
		Outcome: o, Scenario: sc, Kernel: kernel, Reason: "device removed, trigger finished, no task stuck",
		RequestedOffset: scenario.Duration(offset), AchievedOffset: scenario.Duration(offset + 4*time.Millisecond),
		DetectionLatency: scenario.Duration(3500 * time.Millisecond), Duration: scenario.Duration(9 * time.Second),
		Params: scenario.Params{Offset: offset, CPUs: 2},
		Window: &scenario.WindowEvidence{Hit: true, Reason: "trigger running, I/O outstanding 40ms before the cut"},
	}
	switch o {
	case scenario.Hang:
		v.Classification = "unbind-del_gendisk"
		v.Reason = "sh (pid 71) in D state under folio_wait_bit_common, no I/O progress for 3.4s"
		v.StuckTask = &scenario.Task{PID: 71, Comm: "sh", State: "D", WChan: "folio_wait_bit_common", Role: "trigger:unbind",
			Stack: []string{"folio_wait_bit_common+0x151/0x1e0", "del_gendisk+0x81/0x223", "virtblk_remove+0x21/0x6c", "unbind_store+0x4f/0x6b <script>"}}
		if sc == "surprise-io" {
			v.Classification = "pciehp-del_gendisk"
			v.StuckTask.Comm, v.StuckTask.Role, v.StuckTask.Stack = "irq/24-pciehp", "pciehp", v.StuckTask.Stack[:3]
		}
	case scenario.Missed:
		v.Reason = "device removed, trigger finished, no task stuck; but the cut missed the window"
		v.Window = &scenario.WindowEvidence{Reason: "the trigger had already finished 12ms before the cut"}
	case scenario.InfraError:
		v.Reason = "boot failed: qemu exited"
	}
	if dir != "" {
		v.Artifacts = dir
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"verdict.json": b, "console.log": []byte("[ 1.0] boot\n"), "timeline.log": []byte("t0\n")} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return v
}

// matrixRecords is a small matrix judged by the real manifest (as the
// suite judges it):
//
//	unbind-race   stock 1s: 3/5 hung (2 PASS: problems), 2s: 5/5, 4s: 2 MISSED (not tested)
//	              rfc-v3-virtio 1s: 0/4 + 1 INFRA-ERROR (a problem), 2s: 0/5
//	surprise-idle stock, rfc-v3-virtio 0s: 0/3
//	surprise-io   (rate rule >= 50 % of >= 3) stock 2s: 2/3 + 1 MISSED (met),
//	              rfc-v3 2s: 1/3 (below), rfc-v3 1s: 1/1 + 1 MISSED (too few)
func matrixRecords(t *testing.T, root string) []Record {
	var recs []Record
	add := func(kernel, sc string, offset time.Duration, repeat int, o scenario.Outcome) {
		dir := ""
		if root != "" {
			dir = filepath.Join(root, kernel, sc, offset.String()+"-r"+string(rune('0'+repeat)))
		}
		rec := Record{Kernel: kernel, Scenario: sc, Removal: "surprise", Offset: scenario.Duration(offset),
			Repeat: repeat, Seed: 7, Verdict: verdict(t, kernel, sc, offset, o, dir)}
		rec.Judge(expect.Default.For(kernel, expect.None, sc, "", offset))
		recs = append(recs, rec)
	}
	H, P, M := scenario.Hang, scenario.Pass, scenario.Missed
	for r := 1; r <= 5; r++ {
		o := H
		if r == 2 || r == 4 {
			o = P
		}
		add("stock", "unbind-race", time.Second, r, o)
		add("stock", "unbind-race", 2*time.Second, r, H)
		o = P
		if r == 3 {
			o = scenario.InfraError
		}
		add("rfc-v3-virtio", "unbind-race", time.Second, r, o)
		add("rfc-v3-virtio", "unbind-race", 2*time.Second, r, P)
	}
	for r := 1; r <= 3; r++ {
		add("stock", "surprise-idle", 0, r, P)
		add("rfc-v3-virtio", "surprise-idle", 0, r, P)
	}
	for r, o := range []scenario.Outcome{M, M} {
		add("stock", "unbind-race", 4*time.Second, r+1, o)
	}
	for r, o := range []scenario.Outcome{H, P, M, H} {
		add("stock", "surprise-io", 2*time.Second, r+1, o)
	}
	for r, o := range []scenario.Outcome{P, H, P} {
		add("rfc-v3", "surprise-io", 2*time.Second, r+1, o)
	}
	for r, o := range []scenario.Outcome{H, M} {
		add("rfc-v3", "surprise-io", time.Second, r+1, o)
	}
	return recs
}
