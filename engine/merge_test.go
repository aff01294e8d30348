package engine_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/joshdk/go-junit"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/scenario"
)

func row(kernel, sc string, o scenario.Outcome) engine.Row {
	return engine.Row{Host: "local", Kernel: kernel, Anchor: "del_gendisk", Rep: 1, Verdict: scenario.Verdict{Scenario: sc, Kernel: kernel, Outcome: o}}
}

func shard(k, digest string, planned int, rows ...engine.Row) engine.Matrix {
	return engine.Matrix{Plan: &engine.ShardInfo{Shard: k, Digest: digest, Planned: planned}, Rows: rows, Cells: engine.Cells(rows)}
}

func TestMergeRefusesMismatchedShards(t *testing.T) {
	a := shard("1/2", "aaaa", 2, row("stock", "unbind-race", scenario.Hang))
	b := shard("2/2", "aaaa", 2, row("rfc-v3-virtio", "unbind-race", scenario.Pass))
	other := shard("2/2", "bbbb", 2, row("rfc-v3-virtio", "unbind-race", scenario.Pass))
	for _, c := range []struct {
		name   string
		shards []engine.Matrix
		want   string
	}{
		{"two plans", []engine.Matrix{a, other}, "s2 is shard 2/2 of plan bbbb, s1 shard 1/2 of plan aaaa: shards of different plans"},
		{"missing", []engine.Matrix{b}, "plan aaaa has 2 shards; missing shard 1/2"},
		{"twice", []engine.Matrix{a, a, b}, "shard 1/2 given twice: s1 and s2"},
		{"not a shard", []engine.Matrix{{Rows: a.Rows}}, "s1 is not a shard"},
		{"cut short", []engine.Matrix{a, shard("2/2", "aaaa", 2)}, "the shards hold 1 trials, plan aaaa has 2"},
	} {
		names := []string{"s1", "s2", "s3"}
		if _, err := engine.Merge(c.shards, names[:len(c.shards)]); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	m, err := engine.Merge([]engine.Matrix{b, a}, []string{"s2", "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Rows) != 2 || m.Rows[0].Kernel != "stock" || len(m.Cells) != 2 {
		t.Errorf("merged rows %+v, cells %+v: want shard 1's first", m.Rows, m.Cells)
	}
}

// The JUnit file parses with a real JUnit parser, with HANG a failure,
// INFRA-ERROR an error and MISSED skipped.
func TestWriteJUnit(t *testing.T) {
	var buf bytes.Buffer
	rows := []engine.Row{row("stock", "unbind-race", scenario.Hang), row("stock", "surprise-idle", scenario.Pass),
		row("rfc-v3", "unbind-race", scenario.Missed), row("rfc-v3", "surprise-io", scenario.InfraError)}
	if err := engine.WriteJUnit(&buf, rows); err != nil {
		t.Fatal(err)
	}
	suites, err := junit.Ingest(buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(suites) != 2 {
		t.Fatalf("%d suites, want one per kernel", len(suites))
	}
	got := map[junit.Status]int{}
	for _, s := range suites {
		for _, c := range s.Tests {
			got[c.Status]++
		}
	}
	want := map[junit.Status]int{junit.StatusFailed: 1, junit.StatusPassed: 1, junit.StatusSkipped: 1, junit.StatusError: 1}
	for st, n := range want {
		if got[st] != n {
			t.Errorf("%s: %d, want %d (all: %v)", st, got[st], n, got)
		}
	}
}

// Shards hold whole cells, balanced by time, so a shard's rows are not a
// contiguous slice of the plan: the merge puts them back in the plan's
// order (plan_index), cell by cell, as one run would have them.
func TestMergeRestoresThePlansOrder(t *testing.T) {
	at := func(r engine.Row, i int) engine.Row { r.PlanIndex = i; return r }
	s1 := shard("1/2", "aaaa", 4, at(row("stock", "unbind-race", scenario.Hang), 0), at(row("rfc-v3-virtio", "surprise-io", scenario.Pass), 3))
	s2 := shard("2/2", "aaaa", 4, at(row("stock", "surprise-io", scenario.Hang), 1), at(row("rfc-v3-virtio", "unbind-race", scenario.Pass), 2))
	m, err := engine.Merge([]engine.Matrix{s2, s1}, []string{"s2", "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range m.Cells {
		got = append(got, c.Kernel+"/"+c.Scenario)
	}
	if want := "stock/unbind-race stock/surprise-io rfc-v3-virtio/unbind-race rfc-v3-virtio/surprise-io"; strings.Join(got, " ") != want {
		t.Errorf("merged cells %v, want the plan's order %s", got, want)
	}
}
