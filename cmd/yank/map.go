package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/windowmap"
)

// mapCmd is `yank map`: where a scenario's window lies after its anchor,
// per kernel, found by a sweep of delays (windowmap.Sweep), as a table
// and a plot.
func mapCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("map", stderr, `usage: yank map -kernels K[,K...] -scenario S [flags]

Sweeps delays after the scenario's anchor (its cut_at, or -cut-at) and
finds where its window opens and closes: each probe runs 5 trials, and up
to 10 when the 95 % Wilson interval of its in-window share (tested, not
MISSED) still straddles 1/2; the edges are bisected to -resolution. Prints a
table per kernel and writes map.json, map.txt and one map-<kernel>.html
(the plot: hang rate and MISSED share against delay) in the artifacts dir.

`)
	kernelsFlag := fs.String("kernels", "", "comma-separated kernels (any form yank run takes); one map each")
	scName := fs.String("scenario", "", "the scenario to map (its cut_at is the anchor unless -cut-at names one)")
	scFile := fs.String("scenario-file", "", "a JSON file of your own scenarios; -scenario picks one")
	cut := addCutFlags(fs)
	maxDelay := fs.Duration("max-delay", 2*time.Second, "where the window's end is first looked for (doubled while the window is still open there, up to 10s)")
	resolution := fs.Duration("resolution", 10*time.Millisecond, "how finely the edges are bisected")
	maxTrials := fs.Int("max-trials", 10, "trials at one delay at most (5 first; a probe still undecided after this many is a blurred edge)")
	ioTimeout := fs.Duration("io-timeout", 0, "the disk driver's I/O timeout, for devices that have one (nvme; default 5s)")
	cpus := fs.Int("cpus", 2, "guest vCPUs, 1 to 8")
	artifacts := fs.String("artifacts", "", "evidence dir (default ./artifacts/map-<time>)")
	noSnapshot := fs.Bool("no-snapshot", false, "boot every trial cold instead of restoring the kernel's snapshot")
	detection := addDetectionFlags(fs)
	if err := parseFlags(fs, "map", args); err != nil {
		return err
	}
	if *kernelsFlag == "" || *scName == "" && *scFile == "" {
		return fmt.Errorf("map: name the kernels and the scenario: yank map -kernels stock -scenario unbind-race")
	}
	if *resolution <= 0 || *maxDelay <= 0 {
		return fmt.Errorf("map: -resolution %s, -max-delay %s: want both above 0s", *resolution, *maxDelay)
	}
	opts := windowmap.Options{MaxDelay: *maxDelay, Resolution: *resolution, Batch: 5, MaxTrials: *maxTrials}
	if err := opts.Check(); err != nil {
		return fmt.Errorf("map: -max-delay, -resolution, -max-trials: %w", err)
	}
	scs, _, err := parseSelection("map", *scName, *scFile, "")
	if err != nil {
		return err
	}
	if len(scs) != 1 {
		return fmt.Errorf("map: -scenario-file %s has %d scenarios: pick one with -scenario", *scFile, len(scs))
	}
	sc := scs[0]
	cutAt, budget, err := cut.get("map")
	if err != nil {
		return err
	}
	anchorAt := scenario.Matrix{CutAt: cutAt}.AnchorFor(sc)
	if anchorAt == "" {
		return fmt.Errorf("map: scenario %s has no anchor (cut_at) and -cut-at names none: a map sweeps delays after an anchor; name one with -cut-at SYMBOL", sc.Name)
	}
	if err := scenario.CheckIOTimeout(scs, *ioTimeout); err != nil {
		return fmt.Errorf("map: -io-timeout: %w", err)
	}
	det, err := detection.get("map")
	if err != nil {
		return err
	}
	params := det.Apply(scenario.Params{CPUs: *cpus, IOTimeout: *ioTimeout, AnchorBudget: budget})
	if err := params.Validate(); err != nil {
		return fmt.Errorf("map: %w", err)
	}
	specs, err := parseKernels(ctx, "map", *kernelsFlag)
	if err != nil {
		return err
	}
	dir := *artifacts
	if dir == "" {
		dir = filepath.Join("artifacts", "map-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	command := "yank map " + strings.Join(args, " ")
	type kernelMap struct {
		Kernel   string         `json:"kernel"`
		Scenario string         `json:"scenario"`
		Anchor   string         `json:"anchor"`
		Map      *windowmap.Map `json:"map"`
	}
	var maps []kernelMap
	var text strings.Builder
	for _, spec := range specs {
		g, err := engine.Prepare(ctx, spec, stderr)
		if err != nil {
			return err
		}
		// Every probe's trials plan as yank run would: the same anchor
		// check before any boot, the same snapshot per cell.
		if _, err := engine.Plan(scenario.Matrix{Scenarios: scs, Offsets: []time.Duration{0}, CutAt: anchorAt, Repeats: 1}, []engine.Guest{g}, params); err != nil {
			return fmt.Errorf("map: %w", err)
		}
		fmt.Fprintf(stderr, "map: %s %s after %s: probes of 5-%d trials, edges to %s\n", g.Name, sc.Name, anchorAt, *maxTrials, *resolution)
		run := func(ctx context.Context, delay time.Duration, n, first int) ([]scenario.Outcome, error) {
			trials, err := engine.Plan(scenario.Matrix{Scenarios: scs, Offsets: []time.Duration{delay}, CutAt: anchorAt, Repeats: n}, []engine.Guest{g}, params)
			if err != nil {
				return nil, err
			}
			if err := engine.UseSnapshots(trials, !*noSnapshot); err != nil {
				return nil, fmt.Errorf("snapshots: %w", err)
			}
			var out []scenario.Outcome
			for i, t := range trials {
				t.Repeat = first + i // the map's trial number: dirs never collide
				v, err := engine.RunOne(ctx, nil, t, dir, nil)
				if err != nil {
					return out, err
				}
				fmt.Fprintf(stderr, "  %s %s +%s #%d: %s %s\n", g.Name, anchorAt, delay, t.Repeat, v.Outcome, v.Summary())
				out = append(out, v.Outcome)
			}
			return out, nil
		}
		start := time.Now()
		m, err := windowmap.Sweep(ctx, run, opts)
		if err != nil {
			return fmt.Errorf("map: %s: %w", g.Name, err)
		}
		fmt.Fprintf(&text, "%s %s after %s (%s):\n", g.Name, sc.Name, anchorAt, time.Since(start).Round(time.Second))
		windowmap.WriteTable(&text, m)
		text.WriteString("\n")
		maps = append(maps, kernelMap{g.Name, sc.Name, anchorAt, m})
		page := filepath.Join(dir, "map-"+scenario.SafeName(g.Name)+".html")
		f, err := os.Create(page)
		if err != nil {
			return err
		}
		err = windowmap.HTML(f, fmt.Sprintf("%s on %s: the window after %s", sc.Name, g.Name, anchorAt), command, m)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprint(stdout, text.String())
	b, err := json.MarshalIndent(maps, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "map.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "map.txt"), []byte(text.String()), 0o644); err != nil {
		return err
	}
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(stdout, "artifacts: %s (map.json, map.txt, map-<kernel>.html; per trial: verdict.json, timeline.log, console.log)\n", abs)
	return nil
}
