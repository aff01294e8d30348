package engine_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/internal/kcidbcheck"
	"github.com/yank-dev/yank/scenario"
)

func kcidbValidate(t *testing.T, file string) error {
	t.Helper()
	err := kcidbcheck.Validate(file)
	if errors.Is(err, kcidbcheck.ErrNoValidator) {
		t.Fatal(err)
	}
	return err
}

func kcidbRows() []engine.Row {
	started := time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC)
	mk := func(kernel, sc, anchor string, o scenario.Outcome) engine.Row {
		return engine.Row{Host: "local", Kernel: kernel, Anchor: anchor, Rep: 1, Verdict: scenario.Verdict{
			Scenario: sc, Kernel: kernel, Outcome: o, Started: started, Duration: scenario.Duration(20 * time.Second), Classification: "unbind-del_gendisk"}}
	}
	return []engine.Row{mk("stock", "unbind-race", "del_gendisk", scenario.Hang), mk("stock", "surprise-idle", "", scenario.Pass),
		mk("rfc-v3-virtio", "unbind-race", "del_gendisk", scenario.Pass), mk("rfc-v3-virtio", "surprise-io", "virtio_queue_rq", scenario.Missed),
		mk("rfc-v3-virtio", "graceful-io", "ksys_sync", scenario.InfraError), mk("stock", "nvme-unbind-race", "blk_mq_freeze_queue_wait", scenario.Recovered)}
}

// yank's KCIDB file passes kcidb-io's validator, with the outcome map
// README gives; the validator refuses a broken one (so the check can
// fail).
func TestKCIDBValidates(t *testing.T) {
	e2e.Require(t)
	var buf bytes.Buffer
	if err := engine.WriteKCIDB(&buf, kcidbRows(), "yank_test", "0123abcd"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kcidb.json")
	os.WriteFile(file, buf.Bytes(), 0o600)
	if err := kcidbValidate(t, file); err != nil {
		t.Fatalf("kcidb-io refused yank's report: %v\n%s", err, buf.String())
	}
	var rep struct {
		Tests []struct {
			Status string
			Misc   map[string]any
		}
		Builds, Checkouts []map[string]any
	}
	json.Unmarshal(buf.Bytes(), &rep)
	var got []string
	for _, tt := range rep.Tests {
		got = append(got, tt.Misc["outcome"].(string)+"="+tt.Status)
	}
	if want := "HANG=FAIL PASS=PASS PASS=PASS MISSED=MISS INFRA-ERROR=ERROR RECOVERED=PASS"; strings.Join(got, " ") != want {
		t.Errorf("statuses %q, want %q", strings.Join(got, " "), want)
	}
	if len(rep.Checkouts) != 2 || len(rep.Builds) != 2 {
		t.Errorf("%d checkouts, %d builds: want one each per kernel", len(rep.Checkouts), len(rep.Builds))
	}
	broken := strings.Replace(buf.String(), `"status": "FAIL"`, `"status": "HUNG"`, 1)
	os.WriteFile(file, []byte(broken), 0o600)
	if err := kcidbValidate(t, file); err == nil {
		t.Fatal("kcidb-io accepted a test with status HUNG")
	} else if !strings.Contains(err.Error(), "HUNG") {
		t.Errorf("the refusal does not name the bad value: %v", err)
	}
}

func TestKCIDBOrigin(t *testing.T) {
	for _, bad := range []string{"", "Yank", "yank-ci", "a:b"} {
		if err := engine.WriteKCIDB(&bytes.Buffer{}, kcidbRows(), bad, "d"); err == nil || !strings.Contains(err.Error(), "KCIDB origin") {
			t.Errorf("origin %q: %v", bad, err)
		}
	}
}
