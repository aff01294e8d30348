package kernels

// Build and Lookup: the entry points, from options to a cached kernel.

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
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

// Lookup returns the cached artifact for opts without building.
func Lookup(ctx context.Context, opts BuildOptions) (Artifact, bool, error) {
	if isDebian(opts) {
		a, err := Debian()
		return a, err == nil, err
	}
	p, err := planBuild(ctx, opts)
	if err != nil {
		return Artifact{}, false, err
	}
	a, ok := artifactFromEntry(p.entryDir())
	return a, ok, nil
}

func isDebian(opts BuildOptions) bool {
	if opts.Tree != "" || opts.Variant == "" {
		return false
	}
	v, err := FindVariant(opts.Variant)
	return err == nil && v.Prebuilt == "debian"
}

// Build returns the kernel for opts, building it (and its base variant)
// if the cache does not have it yet.
func Build(ctx context.Context, opts BuildOptions) (Artifact, error) {
	if isDebian(opts) {
		return Debian()
	}
	p, err := planBuild(ctx, opts)
	if err != nil {
		return Artifact{}, err
	}
	if a, ok := artifactFromEntry(p.entryDir()); ok {
		markUsed(p.entryDir())
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
	if a, ok := artifactFromEntry(p.entryDir()); ok {
		return a, nil // another process built it while we waited
	}
	cleanStale(p.kernelsDir(), p.key)
	b := &builder{plan: p, opts: opts, baseEntry: baseEntry, timings: map[string]time.Duration{}}
	if err := b.runStages(ctx); err != nil {
		return Artifact{}, err
	}
	a, ok := artifactFromEntry(p.entryDir())
	if !ok {
		return Artifact{}, fmt.Errorf("kernels: entry %s incomplete after build", p.entryDir())
	}
	a.Cached = false
	return a, nil
}
