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
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
)

// libvirtCmd is `yank libvirt`: the same matrix as `yank run`, spread over
// one or more libvirt hosts, each with a guest capacity, run concurrently
// and merged into one report.
func libvirtCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("libvirt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var hosts stringList
	fs.Var(&hosts, "host", "libvirt URI[#N] to run guests on, N at a time (default 1); repeat for several hosts, e.g.\n-host qemu:///system#2 -host qemu+ssh://root@build2/system#4 -host qemu+tcp://10.0.0.7/system")
	kernelsFlag := fs.String("kernels", strings.Join(defaultKernels, ","), "comma-separated kernel variants (yank kernel list) or paths to bzImages")
	scenariosFlag := fs.String("scenarios", strings.Join(scenario.Names(), ","), "comma-separated scenarios")
	offsetsFlag := fs.String("offsets", "", "comma-separated removal offsets (default: each scenario's own)")
	repeat := fs.Int("repeat", 1, "trials per kernel x scenario x offset")
	artifacts := fs.String("artifacts", "", "evidence dir (default ./artifacts/libvirt-<time>)")
	cpus := fs.Int("cpus", 0, "guest vCPUs (default 2)")
	pool := fs.String("pool", "", "libvirt storage pool for kernels and images on each host (default yank, created as a dir pool at /var/lib/libvirt/yank when missing)")
	verbose := fs.Bool("v", false, "print each trial's phases as they happen")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: yank libvirt -host URI[#N] [-host URI[#N]...] [flags]\n\n"+
			"Runs kernels x scenarios x offsets like yank run, with each guest a transient\n"+
			"libvirt domain on one of the hosts (at most N at a time on each). Kernels and\n"+
			"images are uploaded through libvirt. A host that cannot be reached is skipped;\n"+
			"trials it was running are INFRA-ERROR. One merged report: a table on stdout,\n"+
			"matrix.json and matrix.txt in the artifacts dir.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("libvirt: unexpected argument %q (flags only; see yank libvirt -h)", fs.Arg(0))
	}
	if len(hosts) == 0 {
		return errors.New("libvirt: give at least one -host URI (e.g. -host qemu:///system)")
	}
	if *repeat < 1 {
		return fmt.Errorf("libvirt: -repeat %d: want at least 1", *repeat)
	}
	var members []machine.PoolMember
	for _, h := range hosts {
		b, err := machine.ParseLibvirt(h)
		if err != nil {
			return err
		}
		b.StoragePool = *pool
		members = append(members, machine.PoolMember{Backend: b})
	}
	p, err := machine.NewPool(members...)
	if err != nil {
		return err
	}
	scenarios, offsets, err := parseSelection("libvirt", *scenariosFlag, *offsetsFlag)
	if err != nil {
		return err
	}
	dir := *artifacts
	if dir == "" {
		dir = filepath.Join("artifacts", "libvirt-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	trials, err := expandTrials(ctx, splitList(*kernelsFlag), scenarios, offsets, *repeat, *cpus, stderr)
	if err != nil {
		return err
	}
	var progress io.Writer
	if *verbose {
		progress = stderr
	}
	rows, err := RunMatrix(ctx, MatrixConfig{Pool: p, Trials: trials, Dir: dir, Progress: progress, Log: stderr})
	if err != nil {
		return err
	}
	WriteMatrixTable(stdout, rows)
	abs, _ := filepath.Abs(dir)
	fmt.Fprintf(stdout, "\nartifacts: %s (matrix.json, matrix.txt; per trial: verdict.json, timeline.log, console.log, qemu.log with the domain XML)\n", abs)
	infra := 0
	for _, r := range rows {
		if r.Verdict.Outcome == scenario.InfraError {
			infra++
		}
	}
	if infra > 0 {
		return fmt.Errorf("%d trial(s) could not be judged (INFRA-ERROR); see their artifacts", infra)
	}
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

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

// MatrixConfig is what RunMatrix runs.
type MatrixConfig struct {
	Pool     *machine.Pool
	Trials   []MatrixTrial
	Dir      string    // artifacts root
	Progress io.Writer // per-phase lines; nil = quiet
	Log      io.Writer // one line per trial start and end; nil = quiet
}

// RunMatrix runs every trial on the pool's backends, as many at once as
// the pool's capacity, and returns the rows in trial order. A trial that
// gets no backend (every host down) or whose host goes away is an
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
				name := fmt.Sprintf("%s %s +%s r%d", t.KernelName, t.Scenario.Name, t.Params.Offset, t.Rep)
				backend, release, err := cfg.Pool.Acquire(ctx)
				if err != nil {
					row.Verdict = scenario.Verdict{Outcome: scenario.InfraError, Reason: "no host to run on: " + err.Error(),
						Scenario: t.Scenario.Name, Kernel: t.KernelName, Params: t.Params, Started: time.Now()}
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
					v = scenario.Verdict{Outcome: scenario.InfraError, Reason: err.Error(), Scenario: t.Scenario.Name, Kernel: t.KernelName}
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

// writeMatrixReport writes matrix.json (every row, with its host) and
// matrix.txt (the table and per-host totals).
func writeMatrixReport(dir string, rows []MatrixRow) error {
	b, err := json.MarshalIndent(struct {
		Rows []MatrixRow `json:"rows"`
	}{rows}, "", "  ")
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

// WriteMatrixTable prints the merged table and per-host totals.
func WriteMatrixTable(w io.Writer, rows []MatrixRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KERNEL\tSCENARIO\tOFFSET\tHOST\tACHIEVED\tVERDICT\tDETECTED IN\tDETAIL")
	perHost := map[string]map[scenario.Outcome]int{}
	for _, r := range rows {
		v := r.Verdict
		host := r.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Kernel, v.Scenario, time.Duration(v.Params.Offset), host,
			time.Duration(v.AchievedOffset).Round(time.Millisecond), v.Outcome,
			time.Duration(v.DetectionLatency).Round(10*time.Millisecond), v.Summary())
		if perHost[host] == nil {
			perHost[host] = map[scenario.Outcome]int{}
		}
		perHost[host][v.Outcome]++
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
		for _, o := range []scenario.Outcome{scenario.Pass, scenario.Hang, scenario.Crash, scenario.InfraError} {
			if n := perHost[h][o]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, o))
			}
		}
		fmt.Fprintf(w, "host %s: %s\n", h, strings.Join(parts, ", "))
	}
}
