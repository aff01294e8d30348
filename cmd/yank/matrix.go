package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
)

// matrixFlags are the flags `yank run` and `yank libvirt` share, so both
// plan the same trials from the same words.
type matrixFlags struct {
	kernels, variants, scenarios, offsets, artifacts *string
	repeat, cpus                                     *int
	verbose                                          *bool
}

func addMatrixFlags(fs *flag.FlagSet) matrixFlags {
	return matrixFlags{
		kernels:   fs.String("kernels", strings.Join(defaultKernels, ","), "comma-separated kernels: "+kernels.SpecSyntax),
		variants:  fs.String("variants", "", "a variants file (the schema of kernels/variants.json) adding to the built-in variants (default ./"+kernels.DefaultVariantsFile+" if present)"),
		scenarios: fs.String("scenarios", strings.Join(scenario.Names(), ","), "comma-separated scenarios"),
		offsets:   fs.String("offsets", "", "comma-separated removal offsets after the trigger, e.g. 0s,0.5s,2s (default: each scenario's own)"),
		repeat:    fs.Int("repeat", 1, "trials per kernel x scenario x offset"),
		artifacts: fs.String("artifacts", "", "evidence dir (default ./artifacts/<command>-<time>)"),
		cpus:      fs.Int("cpus", 2, "guest vCPUs, 1 to 8 (surprise-io needs 2 to race)"),
		verbose:   fs.Bool("v", false, "print each trial's phases as they happen"),
	}
}

// plan checks the flags and expands them into trials (building kernels
// as needed); cmd names the command in errors and the default dir.
func (f matrixFlags) plan(ctx context.Context, cmd string, log io.Writer) (trials []MatrixTrial, dir string, progress io.Writer, err error) {
	if *f.repeat < 1 {
		return nil, "", nil, fmt.Errorf("%s: -repeat %d: want at least 1", cmd, *f.repeat)
	}
	if *f.cpus < 1 || *f.cpus > 8 {
		return nil, "", nil, fmt.Errorf("%s: -cpus %d: want 1 to 8 guest vCPUs", cmd, *f.cpus)
	}
	scenarios, offsets, err := parseSelection(cmd, *f.scenarios, *f.offsets)
	if err != nil {
		return nil, "", nil, err
	}
	if err := useVariants(*f.variants, log); err != nil {
		return nil, "", nil, fmt.Errorf("%s: -variants: %w", cmd, err)
	}
	specs, err := parseKernels(ctx, cmd, *f.kernels)
	if err != nil {
		return nil, "", nil, err
	}
	dir = *f.artifacts
	if dir == "" {
		dir = filepath.Join("artifacts", cmd+"-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	trials, err = expandTrials(ctx, specs, scenarios, offsets, *f.repeat, *f.cpus, log)
	if err != nil {
		return nil, "", nil, err
	}
	if *f.verbose {
		progress = log
	}
	return trials, dir, progress, nil
}

// finishMatrix prints the table, the per-cell rates and where the
// evidence is, and fails only when a trial could not be judged: HANG is a
// finding and MISSED a trial that tested nothing, neither a failure of
// the tool.
func finishMatrix(stdout io.Writer, rows []MatrixRow, dir, files string) error {
	WriteMatrixTable(stdout, rows)
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(stdout, "\nartifacts: %s (%s)\n", abs, files)
	n := map[scenario.Outcome]int{}
	for _, r := range rows {
		n[r.Verdict.Outcome]++
	}
	if n[scenario.Missed] > 0 {
		fmt.Fprintf(stdout, "%d trial(s) MISSED the scenario's window and tested nothing: see the window reason in their verdict.json\n", n[scenario.Missed])
	}
	if n[scenario.InfraError] > 0 {
		return fmt.Errorf("%d trial(s) could not be judged (INFRA-ERROR); see their artifacts", n[scenario.InfraError])
	}
	return nil
}

// MatrixTrial is one trial of a matrix.
type MatrixTrial struct {
	KernelName, Kernel, Initrd string
	Scenario                   scenario.Scenario
	Params                     scenario.Params
	Rep                        int
	Hooks                      scenario.Hooks // yank's own tests only
}

// MatrixRow is a trial's result with the host it ran on.
type MatrixRow struct {
	Host    string           `json:"host"`
	Kernel  string           `json:"kernel"`
	Rep     int              `json:"rep"`
	Verdict scenario.Verdict `json:"verdict"`
}

// MatrixCell is one kernel x scenario x offset with the rate of its
// trials.
type MatrixCell struct {
	Kernel   string            `json:"kernel"`
	Scenario string            `json:"scenario"`
	Offset   scenario.Duration `json:"offset"`
	Trials   int               `json:"trials"`
	Rate     scenario.Rate     `json:"rate"`
}

// Cells groups rows by kernel, scenario and requested offset, in the
// order they first appear.
func Cells(rows []MatrixRow) []MatrixCell {
	type key struct {
		k, s string
		o    time.Duration
	}
	var order []key
	outcomes := map[key][]scenario.Outcome{}
	for _, r := range rows {
		k := key{r.Kernel, r.Verdict.Scenario, time.Duration(r.Verdict.RequestedOffset)}
		if _, ok := outcomes[k]; !ok {
			order = append(order, k)
		}
		outcomes[k] = append(outcomes[k], r.Verdict.Outcome)
	}
	var cells []MatrixCell
	for _, k := range order {
		cells = append(cells, MatrixCell{Kernel: k.k, Scenario: k.s, Offset: scenario.Duration(k.o),
			Trials: len(outcomes[k]), Rate: scenario.RateOf(outcomes[k])})
	}
	return cells
}

// MatrixConfig is what RunMatrix runs.
type MatrixConfig struct {
	Pool     *machine.Pool
	Trials   []MatrixTrial
	Dir      string    // artifacts root
	Progress io.Writer // per-phase lines; nil = quiet
	Log      io.Writer // one line per trial start and end; nil = quiet
}

// RunMatrix runs every trial on the pool's backends, as many at once as
// the pool's capacity, and returns the rows in trial order. `yank run`
// gives it a pool of one local QEMU, `yank libvirt` libvirt hosts. A trial
// that gets no backend (every host down) or whose host goes away is an
// INFRA-ERROR row; the others go on. It writes matrix.json and matrix.txt
// to cfg.Dir. It fails only on bad input or when ctx ends.
func RunMatrix(ctx context.Context, cfg MatrixConfig) ([]MatrixRow, error) {
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
	rows := make([]MatrixRow, len(cfg.Trials))
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
				row := MatrixRow{Kernel: t.KernelName, Rep: t.Rep}
				name := fmt.Sprintf("%s %s +%s r%d (%d/%d)", t.KernelName, t.Scenario.Name, t.Params.Offset, t.Rep, i+1, len(cfg.Trials))
				backend, release, err := cfg.Pool.Acquire(ctx)
				if err != nil {
					row.Verdict = scenario.Verdict{Outcome: scenario.InfraError, Reason: "no host to run on: " + err.Error(),
						Scenario: t.Scenario.Name, Kernel: t.KernelName, Params: t.Params, RequestedOffset: scenario.Duration(t.Params.Offset), Started: time.Now()}
					logf("trial %s: %s", name, row.Verdict.Reason)
					rows[i] = row
					continue
				}
				row.Host = backend.Name()
				trialDir := filepath.Join(cfg.Dir, safeName(t.KernelName), t.Scenario.Name, fmt.Sprintf("%s-r%d", t.Params.Offset, t.Rep))
				logf("trial %s on %s ...", name, row.Host)
				v, err := scenario.Run(ctx, scenario.Trial{
					Scenario: t.Scenario, Params: t.Params, KernelName: t.KernelName, Kernel: t.Kernel, Initrd: t.Initrd,
					Artifacts: trialDir, Progress: cfg.Progress, Hooks: t.Hooks, Backend: backend,
				})
				release()
				if err != nil {
					badMu.Lock()
					badInput = errors.Join(badInput, fmt.Errorf("trial %s: %w", name, err))
					badMu.Unlock()
					v = scenario.Verdict{Outcome: scenario.InfraError, Reason: err.Error(), Scenario: t.Scenario.Name, Kernel: t.KernelName,
						RequestedOffset: scenario.Duration(t.Params.Offset)}
				}
				row.Verdict = v
				logf("  %s on %s: %s in %s: %s", name, row.Host, v.Outcome, time.Duration(v.Duration).Round(100*time.Millisecond), v.Summary())
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
	return rows, writeMatrixReport(cfg.Dir, rows)
}

// writeMatrixReport writes matrix.json (every row, with its host, and the
// per-cell rates) and matrix.txt (the tables).
func writeMatrixReport(dir string, rows []MatrixRow) error {
	b, err := json.MarshalIndent(struct {
		Rows  []MatrixRow  `json:"rows"`
		Cells []MatrixCell `json:"cells"`
	}{rows, Cells(rows)}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "matrix.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	var txt strings.Builder
	WriteMatrixTable(&txt, rows)
	return os.WriteFile(filepath.Join(dir, "matrix.txt"), []byte(txt.String()), 0o600)
}

// WriteMatrixTable prints one row per trial, one per cell with its hang
// rate, and per-host totals.
func WriteMatrixTable(w io.Writer, rows []MatrixRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSCENARIO\tOFFSET\tHOST\tACHIEVED\tVERDICT\tWINDOW\tDETECTED IN\tDETAIL")
	perHost := map[string]map[scenario.Outcome]int{}
	for _, r := range rows {
		v := r.Verdict
		host := r.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kernel, v.Scenario, time.Duration(v.RequestedOffset), host,
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
	fmt.Fprintln(tw, "KERNEL\tSCENARIO\tOFFSET\tTRIALS\tHANG\tPASS\tMISSED\tOTHER\tHANG RATE (95% Wilson CI, of tested trials)")
	for _, c := range Cells(rows) {
		r := c.Rate
		rate := "not tested"
		if r.Tested > 0 {
			rate = fmt.Sprintf("%.0f %% (%.0f-%.0f %%)", 100*r.Value(), 100*r.Lo, 100*r.Hi)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Kernel, c.Scenario, c.Offset, c.Trials,
			r.Hangs, r.Tested-r.Hangs-r.Crash, r.Missed, r.Crash+r.Infra, rate)
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

// parseSelection reads the -scenarios and -offsets flags; cmd names the
// command in errors.
func parseSelection(cmd, scenariosFlag, offsetsFlag string) ([]scenario.Scenario, []time.Duration, error) {
	var scenarios []scenario.Scenario
	for _, name := range splitList(scenariosFlag) {
		s, err := scenario.Lookup(name)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: -scenarios: %w", cmd, err)
		}
		scenarios = append(scenarios, s)
	}
	if len(scenarios) == 0 {
		return nil, nil, fmt.Errorf("%s: -scenarios is empty (known: %s)", cmd, strings.Join(scenario.Names(), ", "))
	}
	var offsets []time.Duration
	for _, o := range splitList(offsetsFlag) {
		d, err := time.ParseDuration(o)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: offset %q: %w (write it like 1.5s)", cmd, o, err)
		}
		if d < 0 || d > scenario.MaxOffset {
			return nil, nil, fmt.Errorf("%s: offset %s out of range: want 0s to %s", cmd, d, scenario.MaxOffset)
		}
		if slices.Contains(offsets, d) {
			return nil, nil, fmt.Errorf("%s: offset %s given twice (use -repeat for more trials)", cmd, d)
		}
		offsets = append(offsets, d)
	}
	return scenarios, offsets, nil
}

// expandTrials prepares each kernel (building it if needed) and its image,
// and lists its trials: every scenario at the given offsets (or the
// scenario's own), repeat times each.
func expandTrials(ctx context.Context, specs []kernels.Spec, scenarios []scenario.Scenario, offsets []time.Duration, repeat, cpus int, progress io.Writer) ([]MatrixTrial, error) {
	var trials []MatrixTrial
	for _, spec := range specs {
		g, err := prepareGuest(ctx, spec, progress)
		if err != nil {
			return nil, err
		}
		for _, sc := range scenarios {
			offs := offsets
			if len(offs) == 0 {
				for _, o := range sc.Offsets {
					offs = append(offs, time.Duration(o))
				}
			}
			for _, off := range offs {
				for rep := 1; rep <= repeat; rep++ {
					trials = append(trials, MatrixTrial{KernelName: g.name, Kernel: g.kernel, Initrd: g.initrd,
						Scenario: sc, Params: scenario.Params{Offset: off, CPUs: cpus}, Rep: rep})
				}
			}
		}
	}
	return trials, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// safeName turns a kernel name (maybe a path) into one path element.
func safeName(s string) string {
	return strings.Trim(strings.NewReplacer("/", "_", " ", "_").Replace(s), "_.")
}
