package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/snapshot"
)

const kernelUsage = `usage:
  yank kernel list  [-cache DIR] [-variants FILE]
  yank kernel build [-cache DIR] [-variants FILE] [-j N] [-timings] [-q] [-no-ccache] <kernel>
  yank kernel build [-cache DIR] [-j N] [-timings] [-q] -tree DIR [<variant>]
  yank kernel path  [-cache DIR] [-variants FILE] [-tree DIR] <kernel>
  yank kernel gc    [-cache DIR] [-variants FILE] [-keep 14d] [-n]
  yank kernel export [-cache DIR] [-variants FILE] -o FILE.tar.gz <variant>...
  yank kernel import [-cache DIR] [-variants FILE] FILE.tar.gz

` + kernels.SpecSyntax + `.
Examples: stock, rfc-v3+./my-fix.patch, mine=stock+./outgoing/ (a git
format-patch -o dir), rfc-v3-6.12+./series.mbx (b4 am), ~/linux (a tree).

With -tree, the kernel tree DIR (a git checkout at any commit is fine) is
built out of tree; a variant name adds that variant's patch series on top,
applied to a hard-linked copy so DIR stays clean.
path prints the cached bzImage and fails if the kernel is not built yet.
gc removes cache entries that no current variant builds and no build or run
used within -keep, and guest snapshots whose kernel is gone or that no trial
used within -keep, then trims ccache to $YANK_CCACHE_MAXSIZE (default 5G);
-n only says what it would remove.
export writes built variants (bzImage, vmlinux, .config, build log, meta)
to one tarball for another machine; import takes an entry in only if this
machine computes the same cache key for its variant (same Debian source,
patches, config fragment, gcc and recipe) and its bzImage header names the
release it claims, so a run there uses it with no build.
`

// kernelCmd implements `yank kernel list|build|path|gc`.
func kernelCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, kernelUsage)
		return errors.New("kernel: missing subcommand")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("yank kernel "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, kernelUsage)
		fmt.Fprintf(stderr, "\nflags of yank kernel %s:\n", sub)
		fs.PrintDefaults()
	}
	cache := fs.String("cache", "", "cache root (default $YANK_CACHE, $XDG_CACHE_HOME/yank or ~/.cache/yank)")
	variants := fs.String("variants", "", "variants file adding to the built-in ones (default ./"+kernels.DefaultVariantsFile+" if present)")
	var tree, keep, outFile *string
	var jobs *int
	var timings, quiet, noCcache, dryRun *bool
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
	case "export":
		outFile = fs.String("o", "", "the tarball to write (.tar.gz)")
	case "import":
	case "gc":
		keep = fs.String("keep", "14d", "keep entries a build or run used within this long (e.g. 14d, 36h)")
		dryRun = fs.Bool("n", false, "dry run: list what would be removed")
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, kernelUsage)
		return nil
	default:
		fmt.Fprint(stderr, kernelUsage)
		return fmt.Errorf("kernel: unknown subcommand %q (list, build, path, gc, export, import)", sub)
	}
	pos, err := kernelParseFlags(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := useVariants(*variants, stderr); err != nil {
		return fmt.Errorf("kernel %s: -variants: %w", sub, err)
	}

	switch sub {
	case "list":
		if len(pos) != 0 {
			return fmt.Errorf("kernel list: unexpected argument %q", pos[0])
		}
		return kernelList(ctx, *cache, stdout)
	case "export":
		return kernelExport(ctx, *cache, *outFile, pos, stdout)
	case "import":
		if len(pos) != 1 {
			return errors.New("kernel import: give one tarball made by yank kernel export")
		}
		return kernelImport(ctx, *cache, pos[0], stdout)
	case "gc":
		if len(pos) != 0 {
			return fmt.Errorf("kernel gc: unexpected argument %q", pos[0])
		}
		d, err := parseDays(*keep)
		if err != nil {
			return fmt.Errorf("kernel gc: -keep %q: %w", *keep, err)
		}
		return kernelGC(ctx, kernels.GCOptions{CacheDir: *cache, Keep: d, DryRun: *dryRun}, stdout)
	case "build", "path":
		var opts kernels.BuildOptions
		var spec kernels.Spec
		switch {
		case len(pos) == 1 && *tree != "":
			opts = kernels.BuildOptions{Tree: *tree, Variant: pos[0]}
		case len(pos) == 1:
			if spec, err = kernels.ParseSpec(pos[0]); err != nil {
				return fmt.Errorf("kernel %s: %w", sub, err)
			}
			if spec.BzImage != "" {
				return fmt.Errorf("kernel %s: %s is a bzImage already: nothing to build", sub, spec.BzImage)
			}
			if err := spec.Check(ctx, *cache); err != nil {
				return fmt.Errorf("kernel %s: %w", sub, err)
			}
			opts = spec.Options(*cache, nil)
		case len(pos) == 0 && *tree != "":
			opts = kernels.BuildOptions{Tree: *tree}
		default:
			fs.Usage()
			return fmt.Errorf("kernel %s: need one kernel (or -tree DIR)", sub)
		}
		opts.CacheDir = *cache
		if sub == "path" {
			a, ok, err := kernels.Lookup(ctx, opts)
			if err != nil {
				return err
			}
			if !ok {
				what := strings.Join(pos, " ")
				if *tree != "" {
					what = strings.TrimSpace("-tree " + *tree + " " + what)
				}
				return fmt.Errorf("kernel %s is not built yet: run `yank kernel build %s`", what, what)
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

// kernelExport writes the named variants' cache entries to one tarball.
func kernelExport(ctx context.Context, cache, out string, names []string, stdout io.Writer) error {
	if out == "" || len(names) == 0 {
		return errors.New("kernel export: give -o FILE.tar.gz and at least one built variant, e.g. yank kernel export -o kernels.tar.gz stock rfc-v3")
	}
	var arts []kernels.Artifact
	for _, n := range names {
		a, ok, err := kernels.Lookup(ctx, kernels.BuildOptions{Variant: n, CacheDir: cache})
		if err != nil {
			return fmt.Errorf("kernel export: %s: %w", n, err)
		}
		if !ok {
			return fmt.Errorf("kernel export: %s is not built yet: run `yank kernel build %s` first", n, n)
		}
		arts = append(arts, a)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("kernel export: %w", err)
	}
	if err := kernels.Export(ctx, f, arts); err != nil {
		f.Close()
		os.Remove(out)
		return fmt.Errorf("kernel export: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("kernel export: %w", err)
	}
	st, _ := os.Stat(out)
	fmt.Fprintf(stdout, "%s: %d kernels, %.0f MiB\n", out, len(arts), float64(st.Size())/(1<<20))
	return nil
}

// kernelImport installs an export's entries, each checked first.
func kernelImport(ctx context.Context, cache, file string, stdout io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("kernel import: %w", err)
	}
	defer f.Close()
	got, err := kernels.Import(ctx, f, cache)
	if err != nil {
		return fmt.Errorf("kernel import: %s: %w", file, err)
	}
	for _, g := range got {
		state := "imported"
		if g.Already {
			state = "already cached"
		}
		fmt.Fprintf(stdout, "%s (%s, key %s): %s: %s\n", g.Variant, g.Release, g.Key, state, g.Dir)
	}
	return nil
}

// parseDays reads a duration that may be given in days ("14d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 {
			return 0, errors.New("want a number of days like 14d or a duration like 36h")
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("want a number of days like 14d or a duration like 36h")
	}
	return d, nil
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
	fmt.Fprintln(tw, "VARIANT\tBASE\tPATCHES\tSOURCE\tSTATE\tKERNEL")
	for _, v := range kernels.Variants() {
		state, path := "not built", ""
		a, ok, err := kernels.Lookup(ctx, kernels.BuildOptions{Variant: v.Name, CacheDir: cache})
		switch {
		case err != nil:
			state = "unavailable: " + firstLine(err.Error())
		case ok && v.Prebuilt != "":
			state, path = "installed "+a.Release, a.BzImage
		case ok:
			state, path = "built "+a.Release+" ("+a.Key+")", a.BzImage
		}
		name := v.Name
		if v.File != "" {
			name += " *" // from the variants file
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", name, dash(v.Base), len(v.Patches), sourceVersion(v), state, path)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range kernels.Variants() {
		if v.File != "" {
			fmt.Fprintf(w, "* from %s\n", v.File)
			break
		}
	}
	return nil
}

// sourceVersion says which source a variant builds and which version of
// it is installed ("6.12 (6.12.117-1~deb12u1)", "6.12 (not installed)").
func sourceVersion(v kernels.Variant) string {
	if v.Prebuilt != "" {
		return v.Prebuilt
	}
	src, err := kernels.SourceFor(v)
	if err != nil {
		return "?"
	}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", src.AptPackage).Output()
	if err != nil || len(out) == 0 {
		return src.Name + " (not installed: apt-get install " + src.AptPackage + ")"
	}
	return src.Name + " (" + string(out) + ")"
}

func kernelGC(ctx context.Context, opts kernels.GCOptions, w io.Writer) error {
	r, err := kernels.GC(ctx, opts)
	if err != nil {
		return err
	}
	// Snapshots of guests: those whose kernel or image GC removed (or
	// anyone did) go, as do those unused within -keep.
	store, err := snapshot.Open(opts.CacheDir)
	if err != nil {
		return err
	}
	removed, kept := store.GC(opts.Keep, opts.DryRun)
	r.Removed, r.Kept = append(r.Removed, removed...), append(r.Kept, kept...)
	if !opts.DryRun {
		for _, it := range removed {
			r.Freed += it.Bytes
		}
	}
	verb := "removed"
	if opts.DryRun {
		verb = "would remove"
	}
	var sum int64
	for _, it := range r.Removed {
		fmt.Fprintf(w, "%s %s: %s, %s (%s)\n", verb, it.Path, it.What, mib(it.Bytes), it.Why)
		sum += it.Bytes
	}
	for _, it := range r.Kept {
		fmt.Fprintf(w, "kept %s: %s, %s (%s)\n", it.Path, it.What, mib(it.Bytes), it.Why)
	}
	for _, u := range r.UnavailableVariants {
		fmt.Fprintf(w, "note: %s\n", u)
	}
	fmt.Fprintf(w, "ccache: %s -> %s (max %s)\n", mib(r.CcacheBefore), mib(r.CcacheAfter), r.CcacheMax)
	if opts.DryRun {
		fmt.Fprintf(w, "dry run: %d entries, up to %s of their own\n", len(r.Removed), mib(sum))
	} else {
		fmt.Fprintf(w, "freed %s (%d entries removed, %d kept)\n", mib(r.Freed), len(r.Removed), len(r.Kept))
	}
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

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

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
