package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// Defaults for `yank run` with no arguments: the kernels with and without
// the RFC and with the RFC plus its virtio consumer, every scenario, each
// at its default offsets.
var defaultKernels = []string{"stock", "rfc-v3", "rfc-v3-virtio"}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kernelsFlag := fs.String("kernels", strings.Join(defaultKernels, ","), "comma-separated kernel variants (yank kernel list) or paths to bzImages")
	scenariosFlag := fs.String("scenarios", strings.Join(scenario.Names(), ","), "comma-separated scenarios")
	offsetsFlag := fs.String("offsets", "", "comma-separated removal offsets after the trigger, e.g. 0s,0.5s,2s (default: each scenario's own)")
	repeat := fs.Int("repeat", 1, "trials per kernel x scenario x offset")
	artifacts := fs.String("artifacts", "", "evidence dir (default ./artifacts/run-<time>)")
	cpus := fs.Int("cpus", 0, "guest vCPUs (default 2)")
	verbose := fs.Bool("v", false, "print each trial's phases as they happen")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: yank run [flags]\n\nBoots a guest per trial, starts the scenario's trigger through the guest agent,\nremoves the disk from the host at the offset and prints a verdict table.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected argument %q (flags only; see yank run -h)", fs.Arg(0))
	}
	if *repeat < 1 {
		return fmt.Errorf("run: -repeat %d: want at least 1", *repeat)
	}
	scenarios, offsets, err := parseSelection("run", *scenariosFlag, *offsetsFlag)
	if err != nil {
		return err
	}
	dir := *artifacts
	if dir == "" {
		dir = filepath.Join("artifacts", "run-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var progress io.Writer
	if *verbose {
		progress = stderr
	}

	type row struct {
		kernel, scenario string
		offset           time.Duration
		v                scenario.Verdict
	}
	var rows []row
	trials, err := expandTrials(ctx, splitList(*kernelsFlag), scenarios, offsets, *repeat, *cpus, stderr)
	if err != nil {
		return err
	}
	for _, tr := range trials {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		off := tr.Params.Offset
		trialDir := filepath.Join(dir, safeName(tr.KernelName), tr.Scenario.Name, fmt.Sprintf("%s-r%d", off, tr.Rep))
		fmt.Fprintf(stderr, "trial %s %s +%s (%d/%d) ...\n", tr.KernelName, tr.Scenario.Name, off, tr.Rep, *repeat)
		v, err := scenario.Run(ctx, scenario.Trial{
			Scenario: tr.Scenario, Params: tr.Params, KernelName: tr.KernelName,
			Kernel: tr.Kernel, Initrd: tr.Initrd, Artifacts: trialDir, Progress: progress,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "  %s in %s: %s\n", v.Outcome, time.Duration(v.Duration).Round(100*time.Millisecond), v.Summary())
		rows = append(rows, row{tr.KernelName, tr.Scenario.Name, off, v})
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSCENARIO\tOFFSET\tACHIEVED\tVERDICT\tDETECTED IN\tDETAIL")
	infra := 0
	for _, r := range rows {
		if r.v.Outcome == scenario.InfraError {
			infra++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.kernel, r.scenario, r.offset,
			time.Duration(r.v.AchievedOffset).Round(time.Millisecond), r.v.Outcome,
			time.Duration(r.v.DetectionLatency).Round(10*time.Millisecond), r.v.Summary())
	}
	tw.Flush()
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(stdout, "\nartifacts: %s (per trial: verdict.json, timeline.log, console.log, stacks.txt)\n", abs)
	if infra > 0 {
		return errors.New(fmt.Sprint(infra, " trial(s) could not be judged (INFRA-ERROR); see their artifacts"))
	}
	return nil
}

// parseSelection reads the -scenarios and -offsets flags shared by run and
// libvirt; cmd names the command in errors.
func parseSelection(cmd, scenariosFlag, offsetsFlag string) ([]scenario.Scenario, []time.Duration, error) {
	var scenarios []scenario.Scenario
	for _, name := range splitList(scenariosFlag) {
		s, err := scenario.Lookup(name)
		if err != nil {
			return nil, nil, err
		}
		scenarios = append(scenarios, s)
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
		offsets = append(offsets, d)
	}
	return scenarios, offsets, nil
}

// expandTrials prepares each kernel (building it if needed) and its image,
// and lists its trials: every scenario at the given offsets (or the
// scenario's own), repeat times each. Shared by run and libvirt.
func expandTrials(ctx context.Context, kernelNames []string, scenarios []scenario.Scenario, offsets []time.Duration, repeat, cpus int, progress io.Writer) ([]MatrixTrial, error) {
	var trials []MatrixTrial
	for _, kname := range kernelNames {
		g, err := prepareGuest(ctx, kname, progress)
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
