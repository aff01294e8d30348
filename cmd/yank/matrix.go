package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/yank-dev/yank/anchor"
	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/scenario"
)

// matrixFlags are the flags `yank run` and `yank libvirt` share, so both
// plan the same trials from the same words.
type matrixFlags struct {
	shard, kcidb, kcidbOrigin                                      *string
	kernels, variants, scenarios, scenarioFile, offsets, artifacts *string
	repeat, cpus                                                   *int
	ioTimeout                                                      *time.Duration
	verbose, noSnapshot                                            *bool
	detection                                                      detectionFlags
	cut                                                            cutFlags
}

// cutFlags choose where the cut lands, shared by every command that runs
// trials: -cut-at EVENT anchors it to a kernel function, -cut-at offset
// times it after T0.
type cutFlags struct {
	at     *string
	budget *time.Duration
}

func addCutFlags(fs *flag.FlagSet) cutFlags {
	return cutFlags{
		at: fs.String("cut-at", "", "where the cut lands: a kernel function the guest reaches ("+anchor.Syntax+"), cut -offsets after its hit (default 0s: while the guest stands there); "+
			scenario.CutTimed+" for cuts at -offsets after the trigger's T0; default: each scenario's own cut_at (scenario/scenarios.json), else offsets"),
		budget: fs.Duration("anchor-budget", 0, "an anchored trial whose anchor is not hit this long after T0 is UNREACHED, with no cut (default 20s)"),
	}
}

// get checks the flags; cmd names the command in errors.
func (c cutFlags) get(cmd string) (string, time.Duration, error) {
	at := strings.TrimSpace(*c.at)
	if at != "" && at != scenario.CutTimed {
		if _, err := anchor.Parse(at); err != nil {
			return "", 0, fmt.Errorf("%s: -cut-at: %w, or %q for timed cuts", cmd, err, scenario.CutTimed)
		}
	}
	if err := (scenario.Params{AnchorBudget: *c.budget}).Validate(); err != nil {
		return "", 0, fmt.Errorf("%s: -anchor-budget: %w", cmd, err)
	}
	return at, *c.budget, nil
}

// detectionFlags are the verdict-timing knobs, shared by every command
// that runs trials.
type detectionFlags struct{ stallWindow, settle, probeInterval, recoveredAfter *time.Duration }

func addDetectionFlags(fs *flag.FlagSet) detectionFlags {
	return detectionFlags{
		stallWindow:    fs.Duration("stall-window", 0, "HANG needs a task unmoved in D state with no I/O completing for this long, on the host's and the guest's clocks (default 1s)"),
		settle:         fs.Duration("settle", 0, "PASS needs the guest quiet (no D task, the device gone, the trigger done) for this long (default 500ms)"),
		probeInterval:  fs.Duration("probe-interval", 0, "time between looks into the guest after the removal (default 150ms)"),
		recoveredAfter: fs.Duration("recovered-after", 0, "RECOVERED needs a stall this long that ended before the device's hang horizon; a shorter one is part of a PASS (default 3s)"),
	}
}

// get checks the knobs; cmd names the command in errors.
func (d detectionFlags) get(cmd string) (scenario.Detection, error) {
	det := scenario.Detection{StallWindow: *d.stallWindow, Settle: *d.settle, ProbeInterval: *d.probeInterval, RecoveredAfter: *d.recoveredAfter}
	if err := det.Check(); err != nil {
		return det, fmt.Errorf("%s: -stall-window, -settle, -probe-interval, -recovered-after: %w", cmd, err)
	}
	return det, nil
}

func addMatrixFlags(fs *flag.FlagSet) matrixFlags {
	return matrixFlags{
		kernels:      fs.String("kernels", strings.Join(defaultKernels, ","), "comma-separated kernels: "+kernels.SpecSyntax),
		variants:     fs.String("variants", "", "a variants file (the schema of kernels/variants.json) adding to the built-in variants (default ./"+kernels.DefaultVariantsFile+" if present)"),
		scenarios:    fs.String("scenarios", "", "comma-separated scenarios (default: "+strings.Join(scenario.DefaultNames(), ",")+", or the -scenario-file's own; all built-in: "+strings.Join(scenario.Names(), ",")+")"),
		scenarioFile: fs.String("scenario-file", "", "a JSON file of your own scenarios (the schema of scenario/scenarios.json, with argv triggers and loads: see scenario/examples); they join the built-in ones"),
		ioTimeout:    fs.Duration("io-timeout", 0, "the disk driver's I/O timeout for devices that have one (nvme: nvme_core.io_timeout; default 5s); a stall that ends within it is RECOVERED"),
		offsets:      fs.String("offsets", "", "comma-separated removal offsets after the trigger, e.g. 0s,0.5s,2s, or with an anchored cut delays after its hit, e.g. 0s,1ms,10ms (default: each scenario's own)"),
		repeat:       fs.Int("repeat", 1, "trials per kernel x scenario x offset"),
		artifacts:    fs.String("artifacts", "", "evidence dir (default ./artifacts/<command>-<time>)"),
		cpus:         fs.Int("cpus", 2, "guest vCPUs, 1 to 8 (surprise-io needs 2 to race)"),
		verbose:      fs.Bool("v", false, "print each trial's phases as they happen"),
		detection:    addDetectionFlags(fs),
		cut:          addCutFlags(fs),
		kcidb:        fs.String("kcidb", "", "also write the results as a KCIDB I/O v5 report (JSON) to this file"),
		kcidbOrigin:  fs.String("kcidb-origin", "yank", "the KCIDB origin (your CI system's name: a-z, 0-9, _) the report's ids are under"),
		shard:        fs.String("shard", "", "run only shard K of N of the planned trials (K/N, e.g. 1/2): whole cells, balanced by expected trial time, the same split on every machine; merge the shards' artifacts with yank report merge"),
		noSnapshot:   fs.Bool("no-snapshot", false, "boot every trial cold instead of restoring a snapshot saved right before the trigger (made by each cell's first trial, kept in the cache)"),
	}
}

// plan checks the flags and expands them into trials (building kernels
// as needed); cmd names the command in errors and the default dir.
func (f matrixFlags) plan(ctx context.Context, cmd string, log io.Writer) (trials []engine.Trial, dir string, progress io.Writer, shard engine.ShardInfo, err error) {
	sh, err := scenario.ParseShard(*f.shard)
	if err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: -shard %w", cmd, err)
	}
	if err := engine.CheckKCIDBOrigin(*f.kcidbOrigin); err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: -kcidb-origin: %w", cmd, err)
	}
	if *f.repeat < 1 {
		return nil, "", nil, shard, fmt.Errorf("%s: -repeat %d: want at least 1", cmd, *f.repeat)
	}
	if *f.cpus < 1 || *f.cpus > 8 {
		return nil, "", nil, shard, fmt.Errorf("%s: -cpus %d: want 1 to 8 guest vCPUs", cmd, *f.cpus)
	}
	scenarios, offsets, err := parseSelection(cmd, *f.scenarios, *f.scenarioFile, *f.offsets)
	if err != nil {
		return nil, "", nil, shard, err
	}
	if err := scenario.CheckIOTimeout(scenarios, *f.ioTimeout); err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: -io-timeout: %w", cmd, err)
	}
	det, err := f.detection.get(cmd)
	if err != nil {
		return nil, "", nil, shard, err
	}
	cutAt, budget, err := f.cut.get(cmd)
	if err != nil {
		return nil, "", nil, shard, err
	}
	if err := useVariants(*f.variants, log); err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: -variants: %w", cmd, err)
	}
	specs, err := parseKernels(ctx, cmd, *f.kernels)
	if err != nil {
		return nil, "", nil, shard, err
	}
	dir = *f.artifacts
	if dir == "" {
		dir = filepath.Join("artifacts", cmd+"-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := kernels.AnnounceBuilds(ctx, specs, "", log); err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: %w", cmd, err)
	}
	var guests []engine.Guest
	for _, spec := range specs {
		g, err := engine.Prepare(ctx, spec, log)
		if err != nil {
			return nil, "", nil, shard, err
		}
		guests = append(guests, g)
	}
	trials, err = engine.Plan(scenario.Matrix{Scenarios: scenarios, Offsets: offsets, Repeats: *f.repeat, CutAt: cutAt}, guests,
		det.Apply(scenario.Params{CPUs: *f.cpus, IOTimeout: *f.ioTimeout, AnchorBudget: budget}))
	if err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: %w", cmd, err)
	}
	all := len(trials)
	if trials, shard = engine.ShardTrials(trials, sh); len(trials) == 0 {
		return nil, "", nil, shard, fmt.Errorf("%s: -shard %s: the plan has %d cells (%d trials), too few for %d shards; use at most %d", cmd, sh, shard.Cells, all, sh.N, shard.Cells)
	}
	if sh.N > 1 {
		fmt.Fprintf(log, "shard %s: %d of the plan's %d trials (plan %s)\n", sh, len(trials), all, shard.Digest)
	}
	if err := engine.UseSnapshots(trials, !*f.noSnapshot); err != nil {
		return nil, "", nil, shard, fmt.Errorf("%s: snapshots: %w", cmd, err)
	}
	if *f.verbose {
		progress = log
	}
	return trials, dir, progress, shard, nil
}

// writeKCIDB writes -kcidb's report, if asked for.
func (f matrixFlags) writeKCIDB(rows []engine.Row, shard engine.ShardInfo) error {
	return writeKCIDBFile(*f.kcidb, *f.kcidbOrigin, rows, shard.Digest)
}

func writeKCIDBFile(file, origin string, rows []engine.Row, digest string) error {
	if file == "" {
		return nil
	}
	if err := writeFileWith(file, func(w io.Writer) error { return engine.WriteKCIDB(w, rows, origin, digest) }); err != nil {
		return fmt.Errorf("-kcidb %s: %w", file, err)
	}
	return nil
}

// finishMatrix prints the table, the per-cell rates and where the
// evidence is, and fails only when a trial could not be judged: HANG is a
// finding and MISSED a trial that tested nothing, neither a failure of
// the tool.
func finishMatrix(stdout io.Writer, rows []engine.Row, dir, files string) error {
	engine.WriteTable(stdout, rows)
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(stdout, "\nartifacts: %s (%s)\n", abs, files)
	n := map[scenario.Outcome]int{}
	for _, r := range rows {
		n[r.Verdict.Outcome]++
	}
	if n[scenario.Missed] > 0 {
		fmt.Fprintf(stdout, "%d trial(s) MISSED: the cut was not shown inside the scenario's window, so they tested nothing that can be shown (the window's reason is in their verdict.json)\n", n[scenario.Missed])
	}
	if n[scenario.Unreached] > 0 {
		fmt.Fprintf(stdout, "%d trial(s) UNREACHED: the guest never reached the cut's anchor within the anchor budget, so no cut was made (see their verdict.json's anchor)\n", n[scenario.Unreached])
	}
	if n[scenario.InfraError] > 0 {
		return fmt.Errorf("%d trial(s) could not be judged (INFRA-ERROR); see their artifacts", n[scenario.InfraError])
	}
	return nil
}

// parseSelection reads the -scenarios, -scenario-file and -offsets
// flags; cmd names the command in errors. With no -scenarios a run covers
// the file's scenarios, or without a file scenario.Defaults.
func parseSelection(cmd, scenariosFlag, fileFlag, offsetsFlag string) ([]scenario.Scenario, []time.Duration, error) {
	var scenarios []scenario.Scenario
	if fileFlag != "" {
		own, err := scenario.AddFile(fileFlag)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: -scenario-file: %w", cmd, err)
		}
		if scenariosFlag == "" {
			scenarios = own
		}
	} else if scenariosFlag == "" {
		scenarios = scenario.Defaults()
	}
	for _, name := range splitList(scenariosFlag) {
		s, err := scenario.Lookup(name)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: -scenarios: %w", cmd, err)
		}
		scenarios = append(scenarios, s)
	}
	if len(scenarios) == 0 {
		return nil, nil, fmt.Errorf("%s: -scenarios names none (known: %s)", cmd, strings.Join(scenario.Names(), ", "))
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
