package engine

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// Merge joins the matrix.json of every shard of one plan (names: where
// each came from, for errors) into one matrix, its rows in the plan's order. It refuses
// shards of different plans, and a plan with a shard missing or given
// twice, naming them by number.
func Merge(shards []Matrix, names []string) (Matrix, error) {
	if len(shards) == 0 {
		return Matrix{}, fmt.Errorf("merge: no shards given")
	}
	var digest string
	var n int
	seen := map[int]string{}
	for i, m := range shards {
		if m.Plan == nil {
			return Matrix{}, fmt.Errorf("merge: %s is not a shard (its matrix.json has no plan: run with -shard K/N)", names[i])
		}
		spec, err := scenario.ParseShard(m.Plan.Shard)
		if err != nil {
			return Matrix{}, fmt.Errorf("merge: %s: shard %w", names[i], err)
		}
		if i == 0 {
			digest, n = m.Plan.Digest, spec.N
		}
		if m.Plan.Digest != digest || spec.N != n {
			return Matrix{}, fmt.Errorf("merge: %s is shard %s of plan %s, %s shard %s of plan %s: shards of different plans (same kernels, scenarios, offsets, repeats, seed and flags on every shard?)",
				names[i], m.Plan.Shard, m.Plan.Digest, names[0], shards[0].Plan.Shard, digest)
		}
		if prev, dup := seen[spec.K]; dup {
			return Matrix{}, fmt.Errorf("merge: shard %d/%d given twice: %s and %s", spec.K, n, prev, names[i])
		}
		seen[spec.K] = names[i]
	}
	var missing []string
	for k := 1; k <= n; k++ {
		if _, ok := seen[k]; !ok {
			missing = append(missing, strconv.Itoa(k))
		}
	}
	if len(missing) > 0 {
		return Matrix{}, fmt.Errorf("merge: plan %s has %d shards; missing shard %s/%d", digest, n, strings.Join(missing, ", "), n)
	}
	order := slices.Clone(shards)
	slices.SortFunc(order, func(a, b Matrix) int {
		ka, _ := scenario.ParseShard(a.Plan.Shard)
		kb, _ := scenario.ParseShard(b.Plan.Shard)
		return ka.K - kb.K
	})
	var rows []Row
	for _, m := range order {
		rows = append(rows, m.Rows...)
	}
	// The plan's order, as one run would have it (shards of an older yank
	// carry no index: all 0, and the stable sort keeps them shard by shard).
	slices.SortStableFunc(rows, func(a, b Row) int { return a.PlanIndex - b.PlanIndex })
	planned := shards[0].Plan.Planned
	if len(rows) != planned {
		return Matrix{}, fmt.Errorf("merge: the shards hold %d trials, plan %s has %d (a shard was cut short?)", len(rows), digest, planned)
	}
	info := *shards[0].Plan
	info.Shard = fmt.Sprintf("merged %d", n)
	return Matrix{Plan: &info, Rows: rows, Cells: Cells(rows)}, nil
}

// WriteJUnit writes rows as JUnit XML: one testsuite per kernel, one
// testcase per trial; HANG and CRASH are failures (the kernel's),
// INFRA-ERROR an error (the tool's or the host's), MISSED and UNREACHED
// skipped (they tested nothing).
func WriteJUnit(w io.Writer, rows []Row) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      string   `xml:"time,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Error     *failure `xml:"error,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
	}
	type testsuite struct {
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Errors   int        `xml:"errors,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	var suites []*testsuite
	byKernel := map[string]*testsuite{}
	for _, r := range rows {
		s := byKernel[r.Kernel]
		if s == nil {
			s = &testsuite{Name: r.Kernel}
			byKernel[r.Kernel] = s
			suites = append(suites, s)
		}
		v := r.Verdict
		c := testcase{
			Name:      fmt.Sprintf("%s %s r%d", v.Scenario, scenario.CutLabel(r.Anchor, time.Duration(r.Offset)), r.Rep),
			Classname: "yank." + r.Kernel,
			Time:      fmt.Sprintf("%.3f", time.Duration(v.Duration).Seconds()),
		}
		msg := string(v.Outcome) + ": " + v.Summary()
		switch v.Outcome {
		case scenario.Hang, scenario.Crash:
			c.Failure = &failure{Message: msg, Type: string(v.Outcome), Text: v.Summary()}
			s.Failures++
		case scenario.InfraError:
			c.Error = &failure{Message: msg, Type: string(v.Outcome), Text: v.Summary()}
			s.Errors++
		case scenario.Missed, scenario.Unreached:
			c.Skipped = &skipped{Message: msg}
			s.Skipped++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(struct {
		XMLName xml.Name     `xml:"testsuites"`
		Suites  []*testsuite `xml:"testsuite"`
	}{Suites: suites}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
