package scenario

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/journal"
	"github.com/yank-dev/yank/machine"
)

// loadConsoleLog reads a console.log ("<host time> <line>") back into
// journal entries, as the trial saw them.
func loadConsoleLog(t *testing.T, path string) []journal.Entry[string] {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	j := journal.New[string]()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		stamp, line, ok := strings.Cut(sc.Text(), " ")
		at, err := time.Parse(machine.TimeFormat, stamp)
		if !ok || err != nil {
			t.Fatalf("%s: not a console.log line: %q", path, sc.Text())
		}
		j.AppendAt(at, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return j.Snapshot()
}

// TestReplayRecordedTrials replays real trials captured from e2e runs
// (testdata/trials/*: console.log and verdict.json): the guest times, the
// window judgement and the HANG classification computed from the
// recorded console and stuck stacks must equal what the trial decided.
func TestReplayRecordedTrials(t *testing.T) {
	dirs, err := filepath.Glob("testdata/trials/*")
	if err != nil || len(dirs) < 5 {
		t.Fatalf("recorded trials: %v %v", dirs, err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			v := recorded(t, dir)
			sc, err := Lookup(v.Scenario)
			if err != nil {
				t.Fatal(err)
			}
			lines := loadConsoleLog(t, filepath.Join(dir, "console.log"))
			g := ReadGuestTimes(lines, sc.Removal, v.Removal.Stopped)
			// console.log keeps host times to the microsecond.
			if g.Cut == nil || v.Guest.Cut == nil || (*g.Cut-*v.Guest.Cut).abs() > 2*time.Microsecond || g.Order != v.Guest.Order {
				t.Fatalf("guest times: got %+v, recorded %+v", g, v.Guest)
			}
			at, _ := CutFacts(g, sc.WindowWant(), lines)
			w := JudgeWindow(sc.WindowWant(), ParseSamples(samplesOf(t, dir, lines)), at)
			if w.Hit != v.Window.Hit || w.Reason != v.Window.Reason {
				t.Fatalf("window: got %v %q, recorded %v %q", w.Hit, w.Reason, v.Window.Hit, v.Window.Reason)
			}
			if want := strings.Contains(dir, "-missed"); v.Outcome == Missed != want {
				t.Fatalf("recorded outcome %s does not fit the file name", v.Outcome)
			}
			if crash, _, _ := ScanConsole(lines); crash != nil {
				t.Errorf("false crash in a recorded %s: %s", v.Outcome, crash.Line)
			}
			if v.Outcome != Hang {
				return
			}
			class, primary := Classify(v.Stuck, sc.DeviceInfo().RemoveWaits)
			if class != v.Classification || primary.PID != v.StuckTask.PID {
				t.Errorf("classify: got %s pid %d, recorded %s pid %d", class, primary.PID, v.Classification, v.StuckTask.PID)
			}
			if _, _, hung := ScanConsole(lines); v.HangProof.HungTaskReport {
				if _, ok := hung[v.StuckTask.PID]; !ok {
					t.Errorf("khungtaskd's report on pid %d not found in the console (%v)", v.StuckTask.PID, hung)
				}
			}
		})
	}
}

// recorded reads a recorded trial's verdict.json. A trial that today's
// rules judge differently from the day it was recorded keeps its evidence
// untouched and states the new judgement, and why, in rejudged.json
// (outcome, reason, window hit and reason; each optional).
func recorded(t *testing.T, dir string) Verdict {
	t.Helper()
	var v Verdict
	readJSON(t, filepath.Join(dir, "verdict.json"), &v)
	b, err := os.ReadFile(filepath.Join(dir, "rejudged.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return v
	} else if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Why     string  `json:"why"`
		Outcome Outcome `json:"outcome"`
		Reason  string  `json:"reason"`
		Window  *struct {
			Hit    bool   `json:"hit"`
			Reason string `json:"reason"`
		} `json:"window"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.Why == "" {
		t.Fatalf("%s/rejudged.json: %v (it must say why)", dir, err)
	}
	v.Outcome, v.Reason = cmp.Or(r.Outcome, v.Outcome), cmp.Or(r.Reason, v.Reason)
	if r.Window != nil {
		v.Window.Hit, v.Window.Reason = r.Window.Hit, r.Window.Reason
	}
	return v
}

func (d Duration) abs() time.Duration { return max(time.Duration(d), -time.Duration(d)) }

// samplesOf returns the sampler's lines: samples.log (dmesg) where the
// trial kept one, else the console (trials recorded while the samples
// still went to the console).
func samplesOf(t *testing.T, dir string, console []journal.Entry[string]) []string {
	if b, err := os.ReadFile(filepath.Join(dir, "samples.log")); err == nil {
		return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	}
	var out []string
	for _, e := range console {
		out = append(out, e.Item)
	}
	return out
}
