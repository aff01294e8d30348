package kernels

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Artifact is a bootable kernel.
type Artifact struct {
	Variant    string // "stock", "rfc-v3", "debian", or "tree:<dir>@<rev>"
	Key        string
	BzImage    string // absolute path to a bootable kernel
	Vmlinux    string // "" for debian
	Config     string
	BuildLog   string // "" for debian
	ModulesDir string // /lib/modules/<release> for debian; "" for ours (all built in)
	Release    string // kernel release string (make kernelrelease / uname -r)

	Dir            string                   // cache entry directory ("" for debian)
	Cached         bool                     // true when Build found it in the cache
	DisconnectHook bool                     // RFC hook found in vmlinux (see HasDisconnectHook)
	BuiltFrom      string                   // key of the base entry an incremental build started from
	Timings        map[string]time.Duration // per stage, of the build that made the entry
}

// BuildOptions selects what to build.
//
// With Tree set, the kernel tree at Tree is built instead of the Debian
// tarball. If Variant is also set (and has patches), its whole patch series
// is applied to a hard-linked copy of the tree, never to the tree itself;
// otherwise the tree is built as-is, out of tree (O=) so it stays clean.
type BuildOptions struct {
	Variant  string    // name from the manifest
	Tree     string    // alternative: a kernel source dir (git checkout ok)
	Series   []Patch   // a user's patches on top of Variant (or Tree)
	Name     string    // display name ("" = derived from the above)
	CacheDir string    // "" = default root (CacheRoot)
	Progress io.Writer // nil = quiet
	Jobs     int       // 0 = nproc
	// ProgressEvery is how often the build progress line is printed
	// (0 = 15s).
	ProgressEvery time.Duration
	// NoCcache bypasses ccache's cache (to measure what it saves).
	NoCcache bool
}

// BuildError is a failed build step, with the log lines that matter.
type BuildError struct {
	Variant string
	Stage   string
	LogPath string // kept after the temp dir is removed
	Excerpt string // first error lines with context
	Err     error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel %s: %s failed: %v", e.Variant, e.Stage, e.Err)
	if e.Excerpt != "" {
		fmt.Fprintf(&b, "\n%s", indent(e.Excerpt, "  | "))
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "\nfull log: %s", e.LogPath)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// plan is a resolved build request.
type plan struct {
	root     string // cache root
	variant  string // display name
	key      string
	sourceID string
	compiler string
	patches  []Patch // full series
	// Exactly one source: tarball (+ its sha256) or tree.
	tarball, tarSum string
	tree            string
	base            string // base variant to build incrementally from ("" = cold)
	ownPatches      []Patch
}

func (p *plan) kernelsDir() string { return filepath.Join(p.root, "kernels") }
func (p *plan) entry() string      { return filepath.Join(p.kernelsDir(), p.key) }

func resolve(ctx context.Context, opts BuildOptions) (*plan, error) {
	root, err := cacheRoot(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	p := &plan{root: root, variant: opts.Variant}
	var src Source
	if opts.Variant != "" {
		v, err := FindVariant(opts.Variant)
		if err != nil {
			return nil, err
		}
		if v.Prebuilt != "" {
			if len(opts.Series) > 0 {
				return nil, fmt.Errorf("kernels: %q is a prebuilt kernel: a series needs a base yank builds (one of %s)", v.Name, strings.Join(builtVariantNames(), ", "))
			}
			return nil, fmt.Errorf("kernels: variant %q is prebuilt; use Debian()", v.Name)
		}
		if p.patches, err = seriesFor(v.Name); err != nil {
			return nil, err
		}
		if src, err = SourceFor(v); err != nil && opts.Tree == "" {
			return nil, err
		}
		switch {
		case opts.Tree != "":
		case len(opts.Series) > 0:
			// A user's series on a variant: build incrementally from the
			// variant's own entry, as a built-in variant does from its base.
			p.base, p.ownPatches = v.Name, opts.Series
		case v.Base != "":
			p.base = v.Base
			for _, pt := range p.patches {
				if pt.Variant == v.Name {
					p.ownPatches = append(p.ownPatches, pt)
				}
			}
		}
	} else if len(opts.Series) > 0 && opts.Tree == "" {
		return nil, errors.New("kernels: a series needs a base variant or a tree")
	}
	p.patches = append(p.patches, opts.Series...)
	if len(opts.Series) > 0 {
		p.variant = opts.Variant + "+series"
	}
	if opts.Name != "" {
		p.variant = opts.Name
	}
	if p.compiler, err = compilerVersion(ctx); err != nil {
		return nil, err
	}
	if opts.Tree != "" {
		dir, err := filepath.Abs(opts.Tree)
		if err != nil {
			return nil, err
		}
		if !exists(filepath.Join(dir, "Makefile")) || !exists(filepath.Join(dir, "Kconfig")) {
			return nil, fmt.Errorf("kernels: %s is not a kernel source tree (no Makefile/Kconfig)", dir)
		}
		id, rev, err := treeIdentity(ctx, dir)
		if err != nil {
			return nil, err
		}
		p.tree, p.sourceID = dir, "tree "+id
		if opts.Name == "" {
			p.variant = "tree:" + dir + "@" + rev
			if len(p.patches) > 0 {
				p.variant += "+" + cmp.Or(opts.Variant, "series")
			}
		}
	} else {
		if opts.Variant == "" {
			return nil, errors.New("kernels: need a variant or a tree")
		}
		p.tarball = src.Tarball
		if _, err := os.Stat(p.tarball); err != nil {
			return nil, &MissingSourceError{Path: p.tarball, AptPackage: src.AptPackage}
		}
		if p.tarSum, err = tarballIdentity(root, p.tarball); err != nil {
			return nil, err
		}
		p.sourceID = "tarball " + filepath.Base(p.tarball) + " sha256:" + p.tarSum
	}
	p.key = Key(KeyInputs{Source: p.sourceID, Patches: p.patches, Fragment: Fragment(), Compiler: p.compiler, Recipe: RecipeVersion})
	return p, nil
}

// builtVariantNames lists the variants yank builds (not prebuilt ones).
func builtVariantNames() []string {
	var out []string
	for _, v := range Variants() {
		if v.Prebuilt == "" {
			out = append(out, v.Name)
		}
	}
	return out
}

// checkSeries applies the whole series to the files it touches in the
// pristine source (or the tree), so a user's series that does not apply
// fails before any build, its base's included.
func (p *plan) checkSeries(ctx context.Context, progress io.Writer) error {
	src := p.tree
	if src == "" {
		var err error
		if src, err = unpackTarball(ctx, p.root, p.tarball, p.tarSum, progress); err != nil {
			return err
		}
	}
	return CheckSeries(ctx, src, p.patches)
}

// Lookup returns the cached artifact for opts without building.
func Lookup(ctx context.Context, opts BuildOptions) (Artifact, bool, error) {
	if isDebian(opts) {
		a, err := Debian()
		return a, err == nil, err
	}
	p, err := resolve(ctx, opts)
	if err != nil {
		return Artifact{}, false, err
	}
	a, ok := artifactFromEntry(p.entry())
	return a, ok, nil
}

func isDebian(opts BuildOptions) bool {
	if opts.Tree != "" || opts.Variant == "" {
		return false
	}
	v, err := FindVariant(opts.Variant)
	return err == nil && v.Prebuilt == "debian"
}

func artifactFromEntry(entry string) (Artifact, bool) {
	m, err := readMeta(entry)
	if err != nil || !exists(filepath.Join(entry, "bzImage")) {
		return Artifact{}, false
	}
	a := Artifact{
		Variant:        m.Variant,
		Key:            m.Key,
		BzImage:        filepath.Join(entry, "bzImage"),
		Vmlinux:        filepath.Join(entry, "vmlinux"),
		Config:         filepath.Join(entry, ".config"),
		BuildLog:       filepath.Join(entry, "build.log"),
		Release:        m.Release,
		Dir:            entry,
		Cached:         true,
		DisconnectHook: m.DisconnectHook,
		BuiltFrom:      m.BuiltFrom,
		Timings:        map[string]time.Duration{},
	}
	for k, v := range m.Timings {
		if d, err := time.ParseDuration(v); err == nil {
			a.Timings[k] = d
		}
	}
	return a, true
}

// Build returns the kernel for opts, building it (and its base variant)
// if the cache does not have it yet.
func Build(ctx context.Context, opts BuildOptions) (Artifact, error) {
	if isDebian(opts) {
		return Debian()
	}
	p, err := resolve(ctx, opts)
	if err != nil {
		return Artifact{}, err
	}
	if a, ok := artifactFromEntry(p.entry()); ok {
		markUsed(p.entry())
		return a, nil
	}
	if len(opts.Series) > 0 {
		if err := p.checkSeries(ctx, opts.Progress); err != nil {
			return Artifact{}, fmt.Errorf("kernel %s: %w", p.variant, err)
		}
	}
	var baseEntry string
	if p.base != "" {
		bopts := opts
		bopts.Variant, bopts.Series, bopts.Name = p.base, nil, ""
		ba, err := Build(ctx, bopts)
		if err != nil {
			return Artifact{}, fmt.Errorf("building base %s of %s: %w", p.base, opts.Variant, err)
		}
		if exists(filepath.Join(ba.Dir, "src", "yank-out", ".config")) {
			baseEntry = ba.Dir
		}
	}
	if err := mkdirPrivate(p.kernelsDir()); err != nil {
		return Artifact{}, err
	}
	l, err := lock(ctx, filepath.Join(p.kernelsDir(), p.key+".lock"))
	if err != nil {
		return Artifact{}, err
	}
	defer l.Unlock()
	if a, ok := artifactFromEntry(p.entry()); ok {
		return a, nil // another process built it while we waited
	}
	cleanStale(p.kernelsDir(), p.key)
	b := &builder{plan: p, opts: opts, baseEntry: baseEntry, timings: map[string]time.Duration{}}
	if err := b.run(ctx); err != nil {
		return Artifact{}, err
	}
	a, ok := artifactFromEntry(p.entry())
	if !ok {
		return Artifact{}, fmt.Errorf("kernels: entry %s incomplete after build", p.entry())
	}
	a.Cached = false
	return a, nil
}

type builder struct {
	*plan
	opts      BuildOptions
	baseEntry string // "" = cold build
	tmp       string
	src, obj  string
	log       *os.File
	timings   map[string]time.Duration
	start     time.Time
	makeLines int
	unlock    func() // releases the tree object dir's lock, if taken
}

func (b *builder) progressf(format string, args ...any) {
	if b.opts.Progress != nil {
		fmt.Fprintf(b.opts.Progress, format+"\n", args...)
	}
}

// stage runs one step, timing it and reporting it on Progress.
func (b *builder) stage(name string, fn func() error) error {
	t := time.Now()
	b.progressf("%s: %s [%s]", b.variant, name, roundDur(time.Since(b.start)))
	fmt.Fprintf(b.log, "=== yank stage %s\n", name)
	err := fn()
	b.timings[name] += time.Since(t)
	if err != nil {
		return b.fail(name, err)
	}
	return nil
}

// fail keeps the log next to the entries and returns a BuildError.
func (b *builder) fail(stageName string, err error) error {
	be := &BuildError{Variant: b.variant, Stage: stageName, Err: err}
	var pe *PatchError
	var me *MissingOptionsError
	if errors.As(err, &pe) || errors.As(err, &me) {
		// These already say exactly what is wrong; the log adds nothing.
		return fmt.Errorf("kernel %s: %w", b.variant, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kernel %s: %s interrupted: %w", b.variant, stageName, err)
	}
	if b.log != nil {
		b.log.Sync()
		failed := filepath.Join(b.kernelsDir(), b.key+".failed.log")
		if data, rerr := os.ReadFile(b.log.Name()); rerr == nil {
			if os.WriteFile(failed, data, 0o600) == nil {
				be.LogPath = failed
			}
			be.Excerpt = ErrorExcerpt(string(data), 3, 3)
		}
	}
	return be
}

func (b *builder) run(ctx context.Context) error {
	b.start = time.Now()
	b.tmp = filepath.Join(b.kernelsDir(), tmpPrefix+b.key+"-"+randomSuffix())
	if err := mkdirPrivate(b.tmp); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp) // after a successful rename this is a no-op
	var err error
	if b.log, err = os.OpenFile(filepath.Join(b.tmp, "build.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644); err != nil {
		return err
	}
	defer b.log.Close()
	defer func() {
		if b.unlock != nil {
			b.unlock()
		}
	}()
	fmt.Fprintf(b.log, "yank kernel build %s key %s\nsource %s\ncompiler %s\n", b.variant, b.key, b.sourceID, b.compiler)

	if err := b.stage("unpack", func() error { return b.prepareTree(ctx) }); err != nil {
		return err
	}
	toApply := b.patches
	if b.baseEntry != "" {
		toApply = b.ownPatches
	}
	if len(toApply) > 0 {
		if err := b.stage("patch", func() error { return ApplySeries(ctx, b.src, toApply, b.log) }); err != nil {
			return err
		}
	}
	if err := b.stage("config", func() error { return b.configure(ctx) }); err != nil {
		return err
	}
	if err := b.stage("build", func() error { return b.make(ctx) }); err != nil {
		return err
	}
	return b.stage("install", func() error { return b.install(ctx) })
}

// prepareTree sets b.src and b.obj. Our own trees (tarball or patched
// copies) keep the object dir as a direct child, src/yank-out, which makes
// Kbuild use relative paths (srctree := ..): the pair can then be copied
// to a new entry and rebuilt incrementally, and ccache hits across entries.
func (b *builder) prepareTree(ctx context.Context) error {
	b.src = filepath.Join(b.tmp, "src")
	b.obj = filepath.Join(b.src, "yank-out")
	switch {
	case b.baseEntry != "":
		base := filepath.Join(b.baseEntry, "src")
		fmt.Fprintf(b.log, "incremental from %s\n", b.baseEntry)
		if err := run(ctx, "", nil, b.log, "cp", "-al", base, b.src); err != nil {
			return fmt.Errorf("linking base tree: %w", err)
		}
		// Objects are rewritten in place by the compiler: they must be
		// real copies, not links into the base entry.
		if err := os.RemoveAll(b.obj); err != nil {
			return err
		}
		if err := run(ctx, "", nil, b.log, "cp", "-a", filepath.Join(base, "yank-out"), b.obj); err != nil {
			return fmt.Errorf("copying base objects: %w", err)
		}
		n, err := relocateObjDir(b.obj, filepath.Base(b.baseEntry), b.src)
		if err != nil {
			return fmt.Errorf("relocating base objects: %w", err)
		}
		fmt.Fprintf(b.log, "relocated %d dependency files\n", n)
	case b.tree != "" && len(b.patches) == 0:
		// One object dir per tree path, kept between builds: the next
		// commit of a bisect then rebuilds only what changed, and the
		// stable paths give ccache hits. The lock serializes its users.
		sum := sha256.Sum256([]byte(b.tree))
		dir := filepath.Join(b.root, "trees", hex.EncodeToString(sum[:8]))
		if err := mkdirPrivate(dir); err != nil {
			return err
		}
		l, err := lock(ctx, dir+".lock")
		if err != nil {
			return err
		}
		b.unlock = l.Unlock
		_ = os.WriteFile(filepath.Join(dir, "tree"), []byte(b.tree+"\n"), 0o600)
		b.src = b.tree
		b.obj = filepath.Join(dir, "obj")
		return mkdirPrivate(b.obj)
	case b.tree != "":
		// Hard links when the tree is on the cache's filesystem, else a copy.
		if err := run(ctx, "", nil, b.log, "cp", "-al", b.tree, b.src); err != nil {
			os.RemoveAll(b.src)
			if err := run(ctx, "", nil, b.log, "cp", "-a", b.tree, b.src); err != nil {
				return fmt.Errorf("copying %s: %w", b.tree, err)
			}
		}
	default:
		pristine, err := unpackTarball(ctx, b.root, b.tarball, b.tarSum, b.opts.Progress)
		if err != nil {
			return err
		}
		if err := run(ctx, "", nil, b.log, "cp", "-al", pristine, b.src); err != nil {
			return fmt.Errorf("linking source tree: %w", err)
		}
	}
	return mkdirPrivate(b.obj)
}

// makeEnv is the environment for make: the caller's, minus variables that
// would silently change what Kbuild does, plus ccache's directory.
func (b *builder) makeEnv() []string {
	drop := []string{"ARCH", "CROSS_COMPILE", "O", "KBUILD_", "KCONFIG_", "CC", "HOSTCC", "LD", "CFLAGS", "CPPFLAGS", "LDFLAGS", "KCFLAGS", "KAFLAGS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "LLVM", "LC_ALL", "CCACHE_"}
	var env []string
next:
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, d := range drop {
			if k == d || strings.HasSuffix(d, "_") && strings.HasPrefix(k, d) {
				continue next
			}
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "CCACHE_DIR="+filepath.Join(b.root, "ccache"), "CCACHE_MAXSIZE="+CcacheMaxSize(),
		"KBUILD_BUILD_USER=yank", "KBUILD_BUILD_HOST=yank")
	if b.opts.NoCcache {
		// Keep CC="ccache gcc" (a different CC would change every recorded
		// command line and rebuild everything); ccache then just runs gcc.
		env = append(env, "CCACHE_DISABLE=1")
	}
	return env
}

func (b *builder) makeArgs(targets ...string) []string {
	args := []string{"-C", b.src, "O=" + b.obj, "ARCH=x86_64"}
	if hasCcache() {
		args = append(args, "CC=ccache gcc", "HOSTCC=ccache gcc")
	}
	return append(args, targets...)
}

var (
	ccacheOnce sync.Once
	ccacheOK   bool
)

func hasCcache() bool {
	ccacheOnce.Do(func() { ccacheOK = run(context.Background(), "", nil, io.Discard, "ccache", "--version") == nil })
	return ccacheOK
}

func (b *builder) configure(ctx context.Context) error {
	cfg := filepath.Join(b.obj, ".config")
	if b.baseEntry == "" {
		if err := run(ctx, "", b.makeEnv(), b.log, "make", b.makeArgs("tinyconfig")...); err != nil {
			return fmt.Errorf("make tinyconfig: %w", err)
		}
		base, err := os.ReadFile(cfg)
		if err != nil {
			return err
		}
		merged, err := MergeConfig(base, Fragment())
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg, merged, 0o644); err != nil {
			return err
		}
	}
	// Also run for incremental builds: a patch may add Kconfig symbols.
	if err := run(ctx, "", b.makeEnv(), b.log, "make", b.makeArgs("olddefconfig")...); err != nil {
		return fmt.Errorf("make olddefconfig: %w", err)
	}
	final, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	return verifyConfig(final, Fragment())
}

// progressRe matches Kbuild's quiet lines: "  CC      drivers/pci/probe.o".
var progressRe = regexp.MustCompile(`^  ([A-Z][A-Z0-9_-]*)\s+(\S+)`)

// defaultColdLines estimates the quiet-output lines of a cold build of
// this config when no earlier build is recorded (the first stock build).
const defaultColdLines = 1662

func (b *builder) make(ctx context.Context) error {
	jobs := b.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	estimate := b.estimateLines()
	pr, pw := io.Pipe()
	var (
		mu   sync.Mutex
		last string
		n    int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(b.log, line)
			if m := progressRe.FindStringSubmatch(line); m != nil {
				mu.Lock()
				n++
				last = m[1] + " " + m[2]
				mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr)
	}()
	every := b.opts.ProgressEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	t0 := time.Now()
	tick := time.NewTicker(every)
	stopTick := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.C:
				mu.Lock()
				cnt, l := n, last
				mu.Unlock()
				pct := ""
				if estimate > 0 {
					p := cnt * 100 / estimate
					if p > 99 {
						p = 99
					}
					pct = fmt.Sprintf("%d%% ", p)
				} else {
					pct = fmt.Sprintf("%d steps ", cnt)
				}
				b.progressf("build: %s(%s) %s", pct, l, roundDur(time.Since(t0)))
			case <-stopTick:
				return
			}
		}
	}()
	fmt.Fprintf(b.log, "make -j%d (estimate %d lines)\n", jobs, estimate)
	err := run(ctx, "", b.makeEnv(), pw, "make", b.makeArgs(fmt.Sprintf("-j%d", jobs), "bzImage")...)
	pw.Close()
	<-done
	tick.Stop()
	close(stopTick)
	b.makeLines = n
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("make bzImage: %w", err)
	}
	return nil
}

// estimateLines finds the line count of an earlier build of the same
// config and kind (cold or incremental); 0 means unknown.
func (b *builder) estimateLines() int {
	cfg, err := os.ReadFile(filepath.Join(b.obj, ".config"))
	if err != nil {
		return 0
	}
	sum := sha256.Sum256(cfg)
	want := hex.EncodeToString(sum[:])
	ents, _ := os.ReadDir(b.kernelsDir())
	var best Meta
	for _, e := range ents {
		m, err := readMeta(filepath.Join(b.kernelsDir(), e.Name()))
		if err != nil || m.ConfigSHA256 != want || m.Incremental != (b.baseEntry != "") || m.MakeLines == 0 {
			continue
		}
		if m.Created.After(best.Created) {
			best = m
		}
	}
	if best.MakeLines > 0 {
		return best.MakeLines
	}
	if b.baseEntry == "" {
		return defaultColdLines
	}
	return 0
}

func (b *builder) install(ctx context.Context) error {
	var rel strings.Builder
	if err := run(ctx, "", b.makeEnv(), &rel, "make", b.makeArgs("-s", "kernelrelease")...); err != nil {
		return fmt.Errorf("make kernelrelease: %w", err)
	}
	release := strings.TrimSpace(tail(rel.String(), 1))
	for _, c := range []struct{ from, to string }{
		{filepath.Join(b.obj, "arch/x86/boot/bzImage"), "bzImage"},
		{filepath.Join(b.obj, "vmlinux"), "vmlinux"},
		{filepath.Join(b.obj, ".config"), ".config"},
	} {
		if err := copyFile(c.from, filepath.Join(b.tmp, c.to)); err != nil {
			return err
		}
	}
	hook, err := HasDisconnectHook(filepath.Join(b.tmp, "vmlinux"))
	if err != nil {
		return fmt.Errorf("checking vmlinux: %w", err)
	}
	cfg, _ := os.ReadFile(filepath.Join(b.tmp, ".config"))
	cs := sha256.Sum256(cfg)
	if b.tree != "" && b.src != b.tree {
		// A patched copy of a tree is a one-off: keep only the artifacts.
		if err := os.RemoveAll(b.src); err != nil {
			return err
		}
	}
	m := Meta{
		Variant: b.variant, Key: b.key, Source: b.sourceID, Compiler: b.compiler,
		Recipe: RecipeVersion, Release: release, ConfigSHA256: hex.EncodeToString(cs[:]),
		Incremental: b.baseEntry != "", MakeLines: b.makeLines, DisconnectHook: hook,
		Jobs: b.opts.Jobs, Created: time.Now().UTC(), Timings: map[string]string{},
	}
	if m.Jobs <= 0 {
		m.Jobs = runtime.NumCPU()
	}
	if b.baseEntry != "" {
		m.BuiltFrom = filepath.Base(b.baseEntry)
	}
	for _, p := range b.patches {
		m.Patches = append(m.Patches, MetaPatch{Variant: p.Variant, Name: p.Name, SHA256: p.SHA256()})
	}
	for k, v := range b.timings {
		m.Timings[k] = roundDur(v).String()
	}
	// This stage is still running: count it up to now.
	m.Timings["install"] = roundDur(time.Since(b.start) - sumDur(b.timings)).String()
	m.TotalSeconds = time.Since(b.start).Seconds()
	if err := writeJSON(filepath.Join(b.tmp, "meta.json"), m); err != nil {
		return err
	}
	b.log.Sync()
	// The atomic step: a complete entry appears, or none.
	if err := os.Rename(b.tmp, b.entry()); err != nil {
		return fmt.Errorf("installing entry: %w", err)
	}
	b.progressf("%s: done in %s: %s", b.variant, roundDur(time.Since(b.start)), filepath.Join(b.entry(), "bzImage"))
	return nil
}

func sumDur(m map[string]time.Duration) time.Duration {
	var t time.Duration
	for _, v := range m {
		t += v
	}
	return t
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ErrorExcerpt returns the first maxErrs "error:" lines of a build log with
// ctx lines of context around each (make's "Error N" lines when the log has
// no compiler error).
func ErrorExcerpt(log string, maxErrs, ctx int) string {
	lines := strings.Split(log, "\n")
	var hits []int
	for i, l := range lines {
		if strings.Contains(l, "error:") || strings.Contains(l, "Error:") {
			hits = append(hits, i)
			if len(hits) == maxErrs {
				break
			}
		}
	}
	if len(hits) == 0 {
		for i, l := range lines {
			if strings.Contains(l, "***") || strings.Contains(l, "] Error ") {
				hits = append(hits, i)
				if len(hits) == maxErrs {
					break
				}
			}
		}
	}
	if len(hits) == 0 {
		return tail(log, 2*ctx+1)
	}
	keep := map[int]bool{}
	for _, h := range hits {
		for i := h - ctx; i <= h+ctx; i++ {
			if i >= 0 && i < len(lines) {
				keep[i] = true
			}
		}
	}
	idx := make([]int, 0, len(keep))
	for i := range keep {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var out []string
	prev := -2
	for _, i := range idx {
		if i != prev+1 && prev >= 0 {
			out = append(out, "...")
		}
		out = append(out, lines[i])
		prev = i
	}
	return strings.Join(out, "\n")
}
