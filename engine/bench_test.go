package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/snapshot"
)

// benchMatrix is issue 15's throughput matrix: stock and rfc-v3-virtio,
// unbind-race and surprise-io, three offsets, three repeats (36 trials),
// timed (-cut-at offset), as issue 15 measured it.
var benchMatrix = struct {
	kernels, scenarios []string
	offsets            []time.Duration
	repeats            int
}{[]string{"stock", "rfc-v3-virtio"}, []string{"unbind-race", "surprise-io"}, []time.Duration{time.Second, 1500 * time.Millisecond, 2 * time.Second}, 3}

// benchRun is one pass over the matrix.
type benchRun struct {
	name    string
	procs   int
	cold    bool
	rows    []engine.Row
	elapsed time.Duration
	dir     string
}

var (
	benchOnce    sync.Once
	benchResults []benchRun
	benchErr     error
)

// BenchmarkSnapshotMatrix measures, side by side in one run, trials
// restored from snapshots against cold boots (issue 15): it runs the
// 36-trial matrix restored at PROCS=1 and at PROCS=2 (each pass with an
// empty snapshot store, so making the snapshots is counted), and one
// trial per cell booted cold at PROCS=1. It prints per-trial overhead
// (the trial's wall time less its offset and its cut-to-verdict time),
// wall time both ways and their ratio, cut-to-verdict latency (median
// and p95, HANG and PASS apart) and throughput in trials per hour. The
// matrices' reports (matrix.txt, matrix.json, every trial's evidence)
// stay in artifacts/bench-<time>/. The matrix runs once however many
// iterations the benchmark is given.
func BenchmarkSnapshotMatrix(b *testing.B) {
	e2e.Require(b)
	benchOnce.Do(func() { benchResults, benchErr = runBenchMatrix(b) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	cold, restored1, restored2 := benchResults[0], benchResults[1], benchResults[2]
	oc, or := overheads(cold.rows), overheads(restored1.rows)
	wc, wr := walls(cold.rows), walls(restored1.rows)
	b.ReportMetric(ms(median(oc)), "ms-overhead-cold-median")
	b.ReportMetric(ms(median(or)), "ms-overhead-restored-median")
	b.ReportMetric(median(wr).Seconds()/median(wc).Seconds(), "wall-ratio-restored/cold")
	hang, pass := latencies(append(slices.Clone(restored1.rows), restored2.rows...))
	b.ReportMetric(ms(median(hang)), "ms-cut-to-HANG-median")
	b.ReportMetric(ms(pct(hang, 95)), "ms-cut-to-HANG-p95")
	b.ReportMetric(ms(median(pass)), "ms-cut-to-PASS-median")
	b.ReportMetric(trialsPerHour(restored1), "trials/h-PROCS=1")
	b.ReportMetric(trialsPerHour(restored2), "trials/h-PROCS=2")
	b.ReportMetric(0, "ns/op")
}

func runBenchMatrix(b *testing.B) ([]benchRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Minute)
	defer cancel()
	var guests []engine.Guest
	for _, k := range benchMatrix.kernels {
		g, err := engine.Prepare(ctx, kernels.Spec{Name: k, Variant: k}, nil)
		if err != nil {
			return nil, err
		}
		guests = append(guests, g)
	}
	var scs []scenario.Scenario
	for _, n := range benchMatrix.scenarios {
		sc, err := scenario.Lookup(n)
		if err != nil {
			return nil, err
		}
		scs = append(scs, sc)
	}
	root, _ := filepath.Abs(filepath.Join("..", "artifacts", "bench-"+time.Now().UTC().Format("20060102T150405Z")))
	var runs []benchRun
	for _, r := range []benchRun{
		{name: "cold-procs1", procs: 1, cold: true},
		{name: "restored-procs1", procs: 1},
		{name: "restored-procs2", procs: 2},
	} {
		repeats := benchMatrix.repeats
		if r.cold {
			repeats = 1 // one per cell: the overhead and wall of a cold boot
		}
		trials, err := engine.Plan(scenario.Matrix{Scenarios: scs, Offsets: benchMatrix.offsets, CutAt: scenario.CutTimed, Repeats: repeats}, guests, scenario.Params{})
		if err != nil {
			return nil, err
		}
		if !r.cold {
			store, err := snapshot.Open(b.TempDir()) // empty: making the snapshots counts
			if err != nil {
				return nil, err
			}
			for i := range trials {
				trials[i].Snapshots = store
			}
		}
		pool, err := machine.NewPool(machine.PoolMember{Backend: machine.Local, Capacity: r.procs})
		if err != nil {
			return nil, err
		}
		r.dir = filepath.Join(root, r.name)
		start := time.Now()
		r.rows, err = engine.Run(ctx, engine.Config{Pool: pool, Trials: trials, Dir: r.dir})
		r.elapsed = time.Since(start)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	printBench(runs)
	return runs, nil
}

// printBench writes the side-by-side table (make bench shows the
// "bench:" lines).
func printBench(runs []benchRun) {
	p := func(format string, a ...any) { fmt.Printf("bench: "+format+"\n", a...) }
	p("%-16s %6s %5s %10s %12s %12s %10s %10s %9s %s", "PASS", "TRIALS", "PROCS", "ELAPSED", "TRIALS/HOUR", "OVERHEAD", "WALL", "HANG", "PASS", "OUTCOMES")
	for _, r := range runs {
		hang, pass := latencies(r.rows)
		p("%-16s %6d %5d %10s %12.0f %12s %10s %10s %9s %s", r.name, len(r.rows), r.procs, r.elapsed.Round(time.Second), trialsPerHour(r),
			"med "+round(median(overheads(r.rows))), "med "+round(median(walls(r.rows))),
			round(median(hang))+"/"+round(pct(hang, 95)), round(median(pass)), outcomes(r.rows))
		p("  report: %s", filepath.Join(r.dir, "matrix.txt"))
	}
	cold, res := runs[0], runs[1]
	p("overhead (wall less offset and cut-to-verdict): cold median %s, restored median %s; wall restored/cold %.2f",
		round(median(overheads(cold.rows))), round(median(overheads(res.rows))), median(walls(res.rows)).Seconds()/median(walls(cold.rows)).Seconds())
	p("HANG and PASS columns: cut-to-verdict median/p95 and median")
	p("verdicts, cold vs restored (PROCS=1), per cell: %s", agreement(cold.rows, res.rows))
	p("trials restored from one snapshot whose first look differs from the snapshot's first trial's: %d (PROCS=1), %d (PROCS=2)", firstLookMismatches(res.rows), firstLookMismatches(runs[2].rows))
}

func overheads(rows []engine.Row) []time.Duration {
	var d []time.Duration
	for _, r := range rows {
		v := r.Verdict
		d = append(d, time.Duration(v.Duration)-time.Duration(v.AchievedOffset)-time.Duration(v.DetectionLatency))
	}
	return d
}

func walls(rows []engine.Row) []time.Duration {
	var d []time.Duration
	for _, r := range rows {
		d = append(d, time.Duration(r.Verdict.Duration))
	}
	return d
}

func latencies(rows []engine.Row) (hang, pass []time.Duration) {
	for _, r := range rows {
		switch r.Verdict.Outcome {
		case scenario.Hang:
			hang = append(hang, time.Duration(r.Verdict.DetectionLatency))
		case scenario.Pass:
			pass = append(pass, time.Duration(r.Verdict.DetectionLatency))
		}
	}
	return hang, pass
}

func outcomes(rows []engine.Row) string {
	n := map[scenario.Outcome]int{}
	for _, r := range rows {
		n[r.Verdict.Outcome]++
	}
	var parts []string
	for _, o := range []scenario.Outcome{scenario.Hang, scenario.Recovered, scenario.Pass, scenario.Missed, scenario.Crash, scenario.InfraError} {
		if n[o] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", o, n[o]))
		}
	}
	return strings.Join(parts, ", ")
}

// agreement compares each cell's cold outcome with its restored ones.
func agreement(cold, restored []engine.Row) string {
	key := func(r engine.Row) string {
		return r.Kernel + "/" + r.Verdict.Scenario + "@" + time.Duration(r.Offset).String()
	}
	byCell := map[string][]scenario.Outcome{}
	for _, r := range restored {
		byCell[key(r)] = append(byCell[key(r)], r.Verdict.Outcome)
	}
	same, differ := 0, []string{}
	for _, r := range cold {
		rs := byCell[key(r)]
		if len(rs) > 0 && !slices.ContainsFunc(rs, func(o scenario.Outcome) bool { return o != r.Verdict.Outcome }) {
			same++
		} else {
			differ = append(differ, fmt.Sprintf("%s cold %s restored %v", key(r), r.Verdict.Outcome, rs))
		}
	}
	if len(differ) == 0 {
		return fmt.Sprintf("all %d cells agree", same)
	}
	return fmt.Sprintf("%d agree; differ: %s", same, strings.Join(differ, "; "))
}

// firstLookMismatches counts restored trials whose sampler's first look
// differs from the first trial's of the same snapshot (in one pass: each
// pass has its own store).
func firstLookMismatches(rows []engine.Row) int {
	first := map[string]scenario.Sample{}
	n := 0
	for _, r := range rows {
		v := r.Verdict
		if v.Start == nil || v.Start.Kind != scenario.StartSnapshot || v.Window == nil || v.Window.First == nil {
			continue
		}
		f := *v.Window.First
		if prev, ok := first[v.Start.Snapshot]; !ok {
			first[v.Start.Snapshot] = f
		} else if prev != f {
			n++
		}
	}
	return n
}

func trialsPerHour(r benchRun) float64 { return float64(len(r.rows)) / r.elapsed.Hours() }

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1+boolInt(p == 50 && len(s)%2 == 1))]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

var _ = os.Stdout
