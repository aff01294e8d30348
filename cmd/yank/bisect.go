package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/scenario"
)

// git bisect run's exit-code contract: 0 good, 1-127 bad except 125
// (skip: the commit cannot be tested), 128 and more abort the bisection.
const (
	bisectGood  = 0
	bisectBad   = 1
	bisectSkip  = 125
	bisectAbort = 128 // yank's own usage or setup error: never blame a commit
	// bisectInterrupted is 128+SIGINT, as a shell reports ^C.
	bisectInterrupted = 130
)

// exitError carries a chosen exit status out of a command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

// bisectStep is one `yank bisect-run` invocation, saved as step.json.
type bisectStep struct {
	Commit   string `json:"commit"`
	Subject  string `json:"subject"`
	Tree     string `json:"tree"`
	Scenario string `json:"scenario"`
	// CutAt is the anchor the step's cuts wait for ("" timed); Offset is
	// then the delay after its hit, else the offset after T0.
	CutAt        string            `json:"cut_at,omitempty"`
	Offset       scenario.Duration `json:"offset"`
	AnchorBudget scenario.Duration `json:"anchor_budget,omitempty"`
	// IOTimeout is -io-timeout (0: the device's default).
	IOTimeout scenario.Duration `json:"io_timeout,omitempty"`
	Trials    int               `json:"trials_wanted"`
	Invert    bool              `json:"invert"`
	// NoSnapshot is -no-snapshot: every trial boots cold.
	NoSnapshot bool `json:"no_snapshot,omitempty"`
	// Detection is -stall-window, -settle, -probe-interval and -recovered-after.
	Detection scenario.Detection `json:"detection"`
	Result    string             `json:"result"` // good, bad, skip
	Exit      int                `json:"exit"`
	Reason    string             `json:"reason"`
	Verdicts  []scenario.Outcome `json:"verdicts"`
	Started   time.Time          `json:"started"`
	Build     scenario.Duration  `json:"build_time"`
	Total     scenario.Duration  `json:"total_time"`
	Dir       string             `json:"dir"`
}

// bisectRunCmd builds the kernel tree at HEAD, runs trials, and exits 0
// (good), 1 (bad) or 125 (skip) for `git bisect run`; any error of its own
// (bad flags, no git tree, an unwritable log dir) exits 128 so that git
// stops the bisection instead of marking the commit bad.
func bisectRunCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := bisectRun(ctx, args, stdout, stderr)
	var ec exitCoder
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.As(err, &ec):
		return err
	case ctx.Err() != nil:
		return &exitError{code: bisectInterrupted, msg: "bisect-run: interrupted: " + err.Error()}
	}
	return &exitError{code: bisectAbort, msg: "bisect-run: " + err.Error() + " (exit 128: git bisect run stops here)"}
}

func bisectRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bisect-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tree := fs.String("tree", ".", "kernel git tree (checked out at the commit to test)")
	scName := fs.String("scenario", "", "scenario to run (default unbind-race, or -scenario-file's one scenario)")
	scFile := fs.String("scenario-file", "", "a JSON file of your own scenarios (see scenario/examples); -scenario picks one")
	ioTimeout := fs.Duration("io-timeout", 0, "the disk driver's I/O timeout, for devices that have one (nvme; default 5s)")
	cut := addCutFlags(fs)
	offsetFlag := fs.String("offset", "", "the removal's delay after the anchor's hit (default 0s), or with -cut-at offset its offset after T0 (default 2s)")
	trials := fs.Int("trials", 3, "clean trials needed to call a commit good (stops at the first hang)")
	invert := fs.Bool("invert", false, "hunt the commit that FIXED a hang: a hang is good, clean trials are bad")
	detection := addDetectionFlags(fs)
	noSnapshot := fs.Bool("no-snapshot", false, "boot every trial cold instead of restoring the commit's snapshot (saved by its first trial right before the trigger)")
	patches := fs.String("patches", "", "patches to apply on top of the tree: a variant's series (yank kernel list), series files/dirs/mboxes joined by +, or VARIANT+SERIES")
	variants := fs.String("variants", "", "variants file adding to the built-in ones (default ./"+kernels.DefaultVariantsFile+" if present)")
	dir := fs.String("log-dir", "", "where step logs go (default $YANK_CACHE/bisect/<tree name>)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `usage: yank bisect-run [flags]

For git bisect run, inside a kernel tree:
  git bisect start BAD GOOD
  git bisect run yank bisect-run -scenario unbind-race -trials 3

Each trial cuts where the scenario says: at its anchor (cut_at, e.g.
unbind-race at del_gendisk), so every step is decided on a trial that hit
the window; -cut-at offset times the cut -offset after T0 instead.

Exit 0 = good (N clean trials), 1 = bad (a HANG), 125 = skip (the commit does
not build or boot, a trial could not be judged, its anchor is not in this
commit's kernel or was never reached (UNREACHED), or its cut MISSED the
scenario's window), 128 = yank's own error (bad flags, no git tree: git stops
the bisection). -invert swaps good and bad.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *trials < 1 {
		return fmt.Errorf("bisect-run: -trials %d: want at least 1", *trials)
	}
	if err := useVariants(*variants, stderr); err != nil {
		return fmt.Errorf("bisect-run: -variants: %w", err)
	}
	var build kernels.BuildOptions
	if *patches != "" {
		var err error
		if build.Variant, build.Series, err = kernels.ParsePatches(*patches); err != nil {
			return fmt.Errorf("bisect-run: -patches: %w", err)
		}
	}
	if *scFile != "" {
		own, err := scenario.AddFile(*scFile)
		if err != nil {
			return fmt.Errorf("bisect-run: -scenario-file: %w", err)
		}
		if *scName == "" {
			if len(own) != 1 {
				return fmt.Errorf("bisect-run: -scenario-file %s has %d scenarios: pick one with -scenario", *scFile, len(own))
			}
			*scName = own[0].Name
		}
	}
	if *scName == "" {
		*scName = "unbind-race"
	}
	sc, err := scenario.Lookup(*scName)
	if err != nil {
		return fmt.Errorf("bisect-run: -scenario: %w", err)
	}
	det, err := detection.get("bisect-run")
	if err != nil {
		return err
	}
	if err := scenario.CheckIOTimeout([]scenario.Scenario{sc}, *ioTimeout); err != nil {
		return fmt.Errorf("bisect-run: -io-timeout: %w", err)
	}
	cutAt, budget, err := cut.get("bisect-run")
	if err != nil {
		return err
	}
	anchorAt := scenario.Matrix{CutAt: cutAt}.AnchorFor(sc)
	offset := time.Duration(0)
	if anchorAt == "" {
		offset = 2 * time.Second
	}
	if *offsetFlag != "" {
		if offset, err = time.ParseDuration(*offsetFlag); err != nil {
			return fmt.Errorf("bisect-run: -offset %q: %w (write it like 0s, 5ms or 1.5s)", *offsetFlag, err)
		}
	}
	if err := (scenario.Params{Offset: offset, Anchor: anchorAt, AnchorBudget: budget}).Validate(); err != nil {
		return fmt.Errorf("bisect-run: -offset: %w", err)
	}
	top, err := gitOut(ctx, *tree, "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("bisect-run: %s is not a git tree: %w", *tree, err)
	}
	commit, _ := gitOut(ctx, top, "rev-parse", "HEAD")
	subject, _ := gitOut(ctx, top, "log", "-1", "--format=%s")
	logRoot := *dir
	if logRoot == "" {
		root, err := kernels.CacheRoot()
		if err != nil {
			return err
		}
		logRoot = filepath.Join(root, "bisect", filepath.Base(top))
	}
	step := bisectStep{
		Commit: commit, Subject: subject, Tree: top, Scenario: sc.Name, CutAt: anchorAt, Offset: scenario.Duration(offset), AnchorBudget: scenario.Duration(budget), IOTimeout: scenario.Duration(*ioTimeout),
		Trials: *trials, Invert: *invert, NoSnapshot: *noSnapshot, Detection: det, Started: time.Now().UTC(),
		Dir: filepath.Join(logRoot, time.Now().UTC().Format("20060102T150405.000Z")+"-"+short(commit)),
	}
	if err := os.MkdirAll(step.Dir, 0o700); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(step.Dir, "step.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	log := io.MultiWriter(stderr, logf)
	fmt.Fprintf(log, "bisect-run: %s %s\n", short(commit), subject)

	build.Tree, build.Progress = top, log
	runBisectStep(ctx, &step, sc, build, log)
	if ctx.Err() != nil {
		// An interrupted step says nothing about the commit.
		return &exitError{code: bisectInterrupted, msg: "bisect-run: interrupted"}
	}
	step.Total = scenario.Duration(time.Since(step.Started))
	fmt.Fprintf(log, "bisect-run: %s -> %s (exit %d): %s\n", short(commit), step.Result, step.Exit, step.Reason)
	b, err := json.MarshalIndent(step, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(step.Dir, "step.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	if step.Exit == bisectGood {
		return nil
	}
	return &exitError{code: step.Exit, msg: fmt.Sprintf("%s: %s", step.Result, step.Reason)}
}

func runBisectStep(ctx context.Context, step *bisectStep, sc scenario.Scenario, build kernels.BuildOptions, log io.Writer) {
	skip := func(format string, a ...any) {
		step.Result, step.Exit, step.Reason = "skip", bisectSkip, fmt.Sprintf(format, a...)
	}
	buildStart := time.Now()
	k, err := kernels.Build(ctx, build)
	step.Build = scenario.Duration(time.Since(buildStart))
	if err != nil {
		// A commit that does not build says nothing about the hang. The
		// compiler's lines and the kept log go to the step's log; the
		// reason stays one line.
		fmt.Fprintf(log, "bisect-run: %v\n", err)
		skip("kernel does not build: %v", firstLine(err.Error()))
		return
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		skip("guest image: %v", err)
		return
	}
	guest := engine.Guest{Name: short(step.Commit), Kernel: k.BzImage, Initrd: img.Path, Release: k.Release}
	cutAt := step.CutAt
	if cutAt == "" {
		cutAt = scenario.CutTimed
	}
	trials, err := engine.Plan(scenario.Matrix{Scenarios: []scenario.Scenario{sc}, Offsets: []time.Duration{time.Duration(step.Offset)}, CutAt: cutAt, Repeats: step.Trials},
		[]engine.Guest{guest}, step.Detection.Apply(scenario.Params{IOTimeout: time.Duration(step.IOTimeout), AnchorBudget: time.Duration(step.AnchorBudget)}))
	if err != nil {
		skip("trial: %v", err)
		return
	}
	if err := engine.UseSnapshots(trials, !step.NoSnapshot); err != nil {
		fmt.Fprintf(log, "bisect-run: no snapshots (%v): every trial boots cold\n", err)
	}
	clean := 0
	for _, t := range trials {
		i := t.Repeat
		// Sequential, and the first HANG ends the step: it is bad.
		v, err := engine.RunOne(ctx, nil, t, step.Dir, nil)
		if err != nil {
			// An anchor missing from this commit's kernel (renamed, or
			// not built in) says nothing about the hang either.
			skip("trial: %v", err)
			return
		}
		step.Verdicts = append(step.Verdicts, v.Outcome)
		fmt.Fprintf(log, "bisect-run: trial %d/%d: %s %s\n", i, step.Trials, v.Outcome, v.Summary())
		switch v.Outcome {
		case scenario.Hang:
			hang := fmt.Sprintf("HANG in trial %d: %s", i, v.Summary())
			if step.Invert {
				step.Result, step.Exit, step.Reason = "good", bisectGood, hang+" (inverted: the fix is not in yet)"
			} else {
				step.Result, step.Exit, step.Reason = "bad", bisectBad, hang
			}
			return
		case scenario.Pass, scenario.Recovered:
			// A stall the driver recovered from is not the hang hunted.
			clean++
		default:
			// A crash, an infrastructure failure or a cut that missed the
			// window says nothing about the hang hunted.
			skip("trial %d: %s: %s", i, v.Outcome, v.Summary())
			return
		}
	}
	msg := fmt.Sprintf("%d/%d trials clean", clean, step.Trials)
	if step.Invert {
		step.Result, step.Exit, step.Reason = "bad", bisectBad, msg+" (inverted: fixed here)"
	} else {
		step.Result, step.Exit, step.Reason = "good", bisectGood, msg
	}
}

// bisectReportCmd summarizes the steps in a bisect log dir.
func bisectReportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bisect-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("log-dir", "", "a bisect log dir (default: the newest under $YANK_CACHE/bisect)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		root, err := kernels.CacheRoot()
		if err != nil {
			return err
		}
		dirs, _ := filepath.Glob(filepath.Join(root, "bisect", "*"))
		sort.Slice(dirs, func(i, j int) bool { return modTime(dirs[i]).After(modTime(dirs[j])) })
		if len(dirs) == 0 {
			return fmt.Errorf("bisect-report: no bisect logs under %s; run `git bisect run yank bisect-run ...` first", filepath.Join(root, "bisect"))
		}
		*dir = dirs[0]
	}
	steps, err := loadSteps(*dir)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return fmt.Errorf("bisect-report: no step.json under %s", *dir)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tCOMMIT\tRESULT\tTRIALS\tBUILD\tTOTAL\tSUBJECT / REASON")
	var total time.Duration
	for _, s := range steps {
		var vs []string
		for _, v := range s.Verdicts {
			vs = append(vs, string(v))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s: %s\n", s.Started.Format("15:04:05"), short(s.Commit), s.Result,
			fmt.Sprintf("%d/%d %s", len(s.Verdicts), s.Trials, strings.Join(vs, ",")),
			time.Duration(s.Build).Round(time.Second), time.Duration(s.Total).Round(time.Second), s.Subject, s.Reason)
		total += time.Duration(s.Total)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d steps, %s in all; logs in %s\n", len(steps), total.Round(time.Second), *dir)
	return nil
}

func loadSteps(dir string) ([]bisectStep, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "step.json"))
	if err != nil {
		return nil, err
	}
	var steps []bisectStep
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var s bisectStep
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		steps = append(steps, s)
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].Started.Before(steps[j].Started) })
	return steps, nil
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("git %s: %s", strings.Join(args, " "), strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func modTime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
