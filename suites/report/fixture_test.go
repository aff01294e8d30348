package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// verdict makes a realistic verdict; dir, if set, gets its evidence files.
func verdict(t *testing.T, kernel, sc string, offset time.Duration, o scenario.Outcome, dir string) scenario.Verdict {
	v := scenario.Verdict{
		Outcome: o, Scenario: sc, Kernel: kernel, Reason: "device removed, trigger finished, no task stuck",
		RequestedOffset: scenario.Duration(offset), AchievedOffset: scenario.Duration(offset + 4*time.Millisecond),
		DetectionLatency: scenario.Duration(3500 * time.Millisecond), Duration: scenario.Duration(9 * time.Second),
		Params: scenario.Params{Offset: offset, CPUs: 2},
	}
	switch o {
	case scenario.Hang:
		v.Classification = "unbind-del_gendisk"
		v.Reason = "sh (pid 71) in D state under folio_wait_bit_common, no I/O progress for 3.4s"
		v.StuckTask = &scenario.Task{PID: 71, Comm: "sh", State: "D", WChan: "folio_wait_bit_common", Role: "trigger:unbind",
			Stack: []string{"folio_wait_bit_common+0x151/0x1e0", "del_gendisk+0x81/0x223", "virtblk_remove+0x21/0x6c", "unbind_store+0x4f/0x6b <script>"}}
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

// matrixRecords is a small matrix: stock hangs 3 of 5 times at 1s and
// always at 2s, rfc-v3-virtio passes (one INFRA-ERROR), plus a control.
func matrixRecords(t *testing.T, root string) []Record {
	var recs []Record
	add := func(kernel, sc string, offset time.Duration, repeat int, o scenario.Outcome, expectStr, problem string) {
		dir := ""
		if root != "" {
			dir = filepath.Join(root, kernel, sc, offset.String()+"-r"+string(rune('0'+repeat)))
		}
		recs = append(recs, Record{Kernel: kernel, Scenario: sc, Removal: "surprise", Offset: scenario.Duration(offset),
			Repeat: repeat, Seed: 7, Expect: expectStr, Problem: problem, Verdict: verdict(t, kernel, sc, offset, o, dir)})
	}
	for r := 1; r <= 5; r++ {
		o, problem := scenario.Hang, ""
		if r == 2 || r == 4 {
			o, problem = scenario.Pass, "expected HANG unbind-del_gendisk, got PASS"
		}
		add("stock", "unbind-race", time.Second, r, o, "HANG unbind-del_gendisk", problem)
		add("stock", "unbind-race", 2*time.Second, r, scenario.Hang, "HANG unbind-del_gendisk", "")
		o, problem = scenario.Pass, ""
		if r == 3 {
			o, problem = scenario.InfraError, "INFRA-ERROR: the trial could not be judged: boot failed"
		}
		add("rfc-v3-virtio", "unbind-race", time.Second, r, o, "PASS", problem)
		add("rfc-v3-virtio", "unbind-race", 2*time.Second, r, scenario.Pass, "PASS", "")
	}
	for r := 1; r <= 3; r++ {
		add("stock", "surprise-idle", 0, r, scenario.Pass, "PASS", "")
		add("rfc-v3-virtio", "surprise-idle", 0, r, scenario.Pass, "PASS", "")
	}
	return recs
}
