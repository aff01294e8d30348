package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joshdk/go-junit"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/internal/kcidbcheck"
)

// Two shards of one plan, run as two CI jobs would, merged: every planned
// trial once, each cell whole on one shard, one report; a shard of
// another plan is refused.
func TestShardsMerge(t *testing.T) {
	e2e.Require(t)
	ctx := context.Background()
	args := []string{"-kernels", "stock", "-scenarios", "unbind-race,surprise-idle"}
	var dirs []string
	for _, k := range []string{"1/2", "2/2"} {
		dir := filepath.Join(t.TempDir(), "shard")
		var out, errOut bytes.Buffer
		err := runCmd(ctx, append(append([]string{}, args...), "-shard", k, "-artifacts", dir), &out, &errOut)
		t.Logf("shard %s:\n%s%s", k, out.String(), tail(errOut.String(), 1500))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	var shardRows [][]engine.Row
	for _, d := range dirs {
		m, err := engine.ReadMatrixFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if m.Plan == nil || m.Plan.Planned != 2 || m.Plan.Cells != 2 {
			t.Fatalf("%s: plan %+v, want 2 trials in 2 cells", d, m.Plan)
		}
		shardRows = append(shardRows, m.Rows)
	}
	if len(shardRows[0]) != 1 || len(shardRows[1]) != 1 || shardRows[0][0].Verdict.Scenario == shardRows[1][0].Verdict.Scenario {
		t.Fatalf("want one cell per shard, got %+v and %+v", shardRows[0], shardRows[1])
	}
	merged := filepath.Join(t.TempDir(), "merged")
	var out, errOut bytes.Buffer
	kcidbFile := filepath.Join(t.TempDir(), "kcidb.json")
	if err := dispatch(ctx, append([]string{"report", "merge", "-o", merged, "-kcidb", kcidbFile, "-kcidb-origin", "yank_test"}, dirs...), &out, &errOut); err != nil {
		t.Fatalf("merge: %v\n%s", err, errOut.String())
	}
	t.Log(out.String())
	rows, err := engine.ReadMatrix(merged)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || len(engine.Cells(rows)) != 2 {
		t.Fatalf("merged %d rows in %d cells, want 2 in 2", len(rows), len(engine.Cells(rows)))
	}
	if err := kcidbcheck.Validate(kcidbFile); err != nil {
		t.Fatal(err)
	}
	if _, err := junit.IngestFile(filepath.Join(merged, "junit.xml")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(merged, "report.html")); err != nil || !strings.Contains(string(b), "unbind-race") {
		t.Fatalf("report.html: %v", err)
	}
	// The same two shards given twice, and one alone, are refused.
	if err := dispatch(ctx, []string{"report", "merge", "-o", t.TempDir(), dirs[0], dirs[0]}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "shard 1/2 given twice") {
		t.Errorf("merging a shard twice: %v", err)
	}
	if err := dispatch(ctx, []string{"report", "merge", "-o", t.TempDir(), dirs[1]}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "missing shard 1/2") {
		t.Errorf("merging one of two shards: %v", err)
	}
}
