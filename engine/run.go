package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
)

// Row is a trial's result with the host it ran on.
type Row struct {
	Host   string            `json:"host"`
	Kernel string            `json:"kernel"`
	Offset scenario.Duration `json:"offset"` // nominal (the verdict has the requested and achieved ones)
	// Anchor is the anchored cut's event ("" timed): Offset is then the
	// delay after its hit.
	Anchor string `json:"anchor,omitempty"`
	Rep    int    `json:"rep"`
	// PlanIndex is the trial's place in the whole plan (0-based; a
	// shard's rows are a subset, and Merge puts them back in this order).
	PlanIndex int              `json:"plan_index"`
	Verdict   scenario.Verdict `json:"verdict"`
}

// Cell is one kernel x scenario x offset with the rate of its
// trials.
type Cell struct {
	Kernel   string            `json:"kernel"`
	Scenario string            `json:"scenario"`
	Offset   scenario.Duration `json:"offset"`
	Anchor   string            `json:"anchor,omitempty"`
	Trials   int               `json:"trials"`
	Rate     scenario.Rate     `json:"rate"`
}

// Verdicts is the rows' verdicts, in order.
func Verdicts(rows []Row) []scenario.Verdict {
	vs := make([]scenario.Verdict, len(rows))
	for i, r := range rows {
		vs[i] = r.Verdict
	}
	return vs
}

// Cells groups rows by kernel, scenario and nominal offset, in the
// order they first appear.
func Cells(rows []Row) []Cell {
	type key struct {
		k, s, a string
		o       time.Duration
	}
	var order []key
	outcomes := map[key][]scenario.Outcome{}
	for _, r := range rows {
		k := key{r.Kernel, r.Verdict.Scenario, r.Anchor, time.Duration(r.Offset)}
		if _, ok := outcomes[k]; !ok {
			order = append(order, k)
		}
		outcomes[k] = append(outcomes[k], r.Verdict.Outcome)
	}
	var cells []Cell
	for _, k := range order {
		cells = append(cells, Cell{Kernel: k.k, Scenario: k.s, Offset: scenario.Duration(k.o), Anchor: k.a,
			Trials: len(outcomes[k]), Rate: scenario.RateOf(outcomes[k])})
	}
	return cells
}

// Config is what Run runs.
type Config struct {
	Pool     *machine.Pool
	Trials   []Trial
	Dir      string    // artifacts root
	Progress io.Writer // per-phase lines; nil = quiet
	Log      io.Writer // one line per trial start and end; nil = quiet
	// Shard is what part of which plan Trials are (ShardTrials); the zero
	// value is a whole, unsharded run.
	Shard ShardInfo
}

// ShardInfo ties a shard's matrix.json to its plan.
type ShardInfo struct {
	Shard   string `json:"shard"`  // "K/N"
	Digest  string `json:"digest"` // scenario.PlanDigest of the whole plan
	Planned int    `json:"planned"`
	Cells   int    `json:"cells"` // the whole plan's
}

// ShardTrials keeps the trials of shard s (scenario.Shard: whole cells,
// balanced by expected time) and says which plan they belong to.
func ShardTrials(trials []Trial, s scenario.ShardSpec) ([]Trial, ShardInfo) {
	planned := make([]scenario.Planned, len(trials))
	releases := map[string]string{}
	cells := map[string]bool{}
	for i, t := range trials {
		planned[i] = t.Planned
		releases[t.Kernel] = t.Guest.Release
		cells[scenario.CellKey(t.Planned)] = true
	}
	var params scenario.Params
	if len(trials) > 0 {
		params = trials[0].Params
	}
	info := ShardInfo{Shard: s.String(), Digest: scenario.PlanDigest(planned, releases, params), Planned: len(trials), Cells: len(cells)}
	var out []Trial
	for _, i := range scenario.Shard(planned, s) {
		t := trials[i]
		t.PlanIndex = i
		out = append(out, t)
	}
	return out, info
}

// Run runs every trial on the pool's backends, as many at once as
// the pool's capacity, and returns the rows in trial order. `yank run`
// gives it a pool of one local QEMU, `yank libvirt` libvirt hosts. A trial
// that gets no backend (every host down) or whose host goes away is an
// INFRA-ERROR row; the others go on. It writes matrix.json and matrix.txt
// to cfg.Dir. It fails only on bad input or when ctx ends.
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logw, format+"\n", args...)
	}
	rows := make([]Row, len(cfg.Trials))
	next := make(chan int)
	var wg sync.WaitGroup
	var badInput error
	var badMu sync.Mutex
	for w := 0; w < cfg.Pool.Capacity(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := cfg.Trials[i]
				name := fmt.Sprintf("%s (%d/%d)", t.Name(), i+1, len(cfg.Trials))
				if cfg.Shard == (ShardInfo{}) {
					t.PlanIndex = i
				}
				row, err := runPooled(ctx, cfg, t, name, logf)
				if err != nil {
					badMu.Lock()
					badInput = errors.Join(badInput, err)
					badMu.Unlock()
				}
				rows[i] = row
			}
		}()
	}
feed:
	for i := range cfg.Trials {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return rows, ctx.Err()
	}
	if badInput != nil {
		return rows, badInput
	}
	return rows, WriteReport(cfg.Dir, rows, cfg.Shard)
}

// runPooled runs one trial of a matrix on a backend from the pool; a
// trial that gets no backend is an INFRA-ERROR row.
func runPooled(ctx context.Context, cfg Config, t Trial, name string, logf func(string, ...any)) (Row, error) {
	row := Row{Kernel: t.Kernel, Offset: scenario.Duration(t.Nominal), Anchor: t.Anchor, Rep: t.Repeat, PlanIndex: t.PlanIndex}
	infra := func(reason string) scenario.Verdict {
		return scenario.Verdict{Outcome: scenario.InfraError, Reason: reason, Scenario: t.Scenario.Name, Kernel: t.Kernel,
			Params: t.Params, RequestedOffset: scenario.Duration(t.Offset), Started: time.Now()}
	}
	backend, release, err := cfg.Pool.Acquire(ctx)
	if err != nil {
		row.Verdict = infra("no host to run on: " + err.Error())
		logf("trial %s: %s", name, row.Verdict.Reason)
		return row, nil
	}
	row.Host = backend.Name()
	logf("trial %s on %s ...", name, row.Host)
	v, err := RunOne(ctx, backend, t, cfg.Dir, cfg.Progress)
	release()
	if err != nil {
		row.Verdict = infra(err.Error())
		return row, fmt.Errorf("trial %s: %w", name, err)
	}
	row.Verdict = v
	logf("  %s on %s: %s in %s: %s", name, row.Host, v.Outcome, time.Duration(v.Duration).Round(100*time.Millisecond), v.Summary())
	return row, nil
}

// Matrix is matrix.json: every row, with its host, the per-cell rates
// and, for a shard, which plan it is part of.
type Matrix struct {
	Plan  *ShardInfo `json:"plan,omitempty"`
	Rows  []Row      `json:"rows"`
	Cells []Cell     `json:"cells"`
}

// WriteReport writes matrix.json and matrix.txt (the tables) to dir.
func WriteReport(dir string, rows []Row, shard ShardInfo) error {
	m := Matrix{Rows: rows, Cells: Cells(rows)}
	if shard.Digest != "" {
		m.Plan = &shard
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "matrix.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	var txt strings.Builder
	WriteTable(&txt, rows)
	return os.WriteFile(filepath.Join(dir, "matrix.txt"), []byte(txt.String()), 0o600)
}

// ReadMatrix reads the rows of a matrix.json written by Run (path is the
// file or the artifacts dir holding it).
func ReadMatrix(path string) ([]Row, error) {
	m, err := ReadMatrixFile(path)
	return m.Rows, err
}

// ReadMatrixFile reads a whole matrix.json (path: the file or its dir).
func ReadMatrixFile(path string) (Matrix, error) {
	var m Matrix
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "matrix.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: not a yank matrix.json: %w", path, err)
	}
	if len(m.Rows) == 0 {
		return m, fmt.Errorf("%s: no trials in it (want the matrix.json of yank run or yank libvirt)", path)
	}
	return m, nil
}

// WriteTable prints one row per trial, one per cell with its hang
// rate, and per-host totals.
func WriteTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSCENARIO\tOFFSET\tHOST\tACHIEVED\tVERDICT\tWINDOW\tDETECTED IN\tDETAIL")
	perHost := map[string]map[scenario.Outcome]int{}
	for _, r := range rows {
		v := r.Verdict
		host := r.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kernel, v.Scenario, scenario.CutLabel(r.Anchor, time.Duration(r.Offset)), host,
			time.Duration(v.AchievedOffset).Round(time.Millisecond), v.Outcome, windowColumn(v),
			time.Duration(v.DetectionLatency).Round(10*time.Millisecond), v.Summary())
		if perHost[host] == nil {
			perHost[host] = map[scenario.Outcome]int{}
		}
		perHost[host][v.Outcome]++
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSCENARIO\tOFFSET\tTRIALS\tHANG\tRECOVERED\tPASS\tMISSED\tOTHER\tHANG RATE (95% Wilson CI, of tested trials)")
	for _, c := range Cells(rows) {
		r := c.Rate
		rate := "not tested"
		if r.Tested > 0 {
			rate = fmt.Sprintf("%.0f %% (%.0f-%.0f %%)", 100*r.Value(), 100*r.Lo, 100*r.Hi)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Kernel, c.Scenario, scenario.CutLabel(c.Anchor, time.Duration(c.Offset)), c.Trials,
			r.Hangs, r.Recovered, r.Tested-r.Hangs-r.Recovered-r.Crash, r.Missed, r.Crash+r.Infra+r.Unreached, rate)
	}
	tw.Flush()

	var hostNames []string
	for h := range perHost {
		hostNames = append(hostNames, h)
	}
	sort.Strings(hostNames)
	fmt.Fprintln(w)
	for _, h := range hostNames {
		var parts []string
		for _, o := range scenario.Outcomes {
			if n := perHost[h][o]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, o))
			}
		}
		fmt.Fprintf(w, "host %s: %s\n", h, strings.Join(parts, ", "))
	}
}

// windowColumn says whether the cut was proven inside the window: "hit",
// "missed", or "-" when the trial never got that far.
func windowColumn(v scenario.Verdict) string {
	switch {
	case v.Window == nil:
		return "-"
	case v.Window.Hit:
		return "hit"
	}
	return "missed"
}
