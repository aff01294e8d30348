package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/kernels"
)

const kernelUsage = `usage:
  yank kernel list  [-cache DIR]
  yank kernel build [-cache DIR] [-j N] [-timings] [-q] [-no-ccache] <variant>
  yank kernel build [-cache DIR] [-j N] [-timings] [-q] -tree DIR [<variant>]
  yank kernel path  [-cache DIR] [-tree DIR] <variant>

With -tree, the kernel tree DIR (a git checkout at any commit is fine) is
built out of tree; a variant name adds that variant's patch series on top,
applied to a hard-linked copy so DIR stays clean.
path prints the cached bzImage and fails if the kernel is not built yet.
`

// kernelCmd implements `yank kernel list|build|path`.
func kernelCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, kernelUsage)
		return errors.New("kernel: missing subcommand")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("yank kernel "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, kernelUsage) }
	cache := fs.String("cache", "", "cache root (default $YANK_CACHE, $XDG_CACHE_HOME/yank or ~/.cache/yank)")
	var tree *string
	var jobs *int
	var timings, quiet, noCcache *bool
	switch sub {
	case "list":
	case "build":
		tree = fs.String("tree", "", "build this kernel source tree instead of Debian's linux-source")
		jobs = fs.Int("j", 0, "parallel make jobs (0 = number of CPUs)")
		timings = fs.Bool("timings", false, "print per-stage build times")
		quiet = fs.Bool("q", false, "no progress on stderr")
		noCcache = fs.Bool("no-ccache", false, "compile without ccache (to measure what it saves)")
	case "path":
		tree = fs.String("tree", "", "kernel source tree the kernel was built from")
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, kernelUsage)
		return nil
	default:
		fmt.Fprint(stderr, kernelUsage)
		return fmt.Errorf("kernel: unknown subcommand %q", sub)
	}
	pos, err := kernelParseFlags(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	switch sub {
	case "list":
		if len(pos) != 0 {
			return fmt.Errorf("kernel list: unexpected argument %q", pos[0])
		}
		return kernelList(ctx, *cache, stdout)
	case "build", "path":
		opts := kernels.BuildOptions{CacheDir: *cache, Tree: *tree}
		switch {
		case len(pos) == 1:
			opts.Variant = pos[0]
		case len(pos) == 0 && opts.Tree != "":
		default:
			fs.Usage()
			return fmt.Errorf("kernel %s: need one variant (or -tree DIR)", sub)
		}
		if sub == "path" {
			a, ok, err := kernels.Lookup(ctx, opts)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("kernel %s is not built yet: run `yank kernel build %s`", kernelDescribe(opts), kernelDescribe(opts))
			}
			fmt.Fprintln(stdout, a.BzImage)
			return nil
		}
		opts.Jobs, opts.NoCcache = *jobs, *noCcache
		if !*quiet {
			opts.Progress = stderr
		}
		start := time.Now()
		a, err := kernels.Build(ctx, opts)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, a.BzImage)
		if *timings {
			kernelPrintTimings(stdout, a, time.Since(start))
		}
		return nil
	}
	return nil
}

func kernelDescribe(o kernels.BuildOptions) string {
	if o.Tree != "" {
		s := "-tree " + o.Tree
		if o.Variant != "" {
			s += " " + o.Variant
		}
		return s
	}
	return o.Variant
}

// kernelParseFlags lets flags follow the positional arguments
// ("build rfc-v3 -timings"), which the flag package alone does not.
func kernelParseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func kernelList(ctx context.Context, cache string, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tBASE\tPATCHES\tSTATE\tKERNEL")
	for _, v := range kernels.Variants() {
		state, path := "not built", ""
		a, ok, err := kernels.Lookup(ctx, kernels.BuildOptions{Variant: v.Name, CacheDir: cache})
		switch {
		case err != nil:
			state = "unavailable: " + kernelFirstLine(err.Error())
		case ok && v.Prebuilt != "":
			state, path = "installed "+a.Release, a.BzImage
		case ok:
			state, path = "built "+a.Release, a.BzImage
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", v.Name, kernelDash(v.Base), len(v.Patches), state, path)
	}
	return tw.Flush()
}

func kernelPrintTimings(w io.Writer, a kernels.Artifact, took time.Duration) {
	how := "built now"
	if a.Cached {
		how = "cache hit"
	}
	if a.BuiltFrom != "" {
		how += ", incremental from " + a.BuiltFrom
	}
	r := 100 * time.Millisecond
	if took < time.Second {
		r = time.Millisecond
	}
	fmt.Fprintf(w, "%s (%s): this command took %s\n", a.Variant, how, took.Round(r))
	var stages []string
	var total time.Duration
	for s, d := range a.Timings {
		stages = append(stages, s)
		total += d
	}
	order := map[string]int{"unpack": 0, "patch": 1, "config": 2, "build": 3, "install": 4}
	sort.Slice(stages, func(i, j int) bool { return order[stages[i]] < order[stages[j]] })
	if a.Cached {
		fmt.Fprintln(w, "  stages of the build that made this entry:")
	}
	for _, s := range stages {
		fmt.Fprintf(w, "  %-8s %s\n", s, a.Timings[s])
	}
	if len(stages) > 0 {
		fmt.Fprintf(w, "  %-8s %s\n", "total", total)
	}
}

func kernelFirstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func kernelDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
