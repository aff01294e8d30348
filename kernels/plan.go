package kernels

// Planning: a request resolved into sources, patches and a cache key, before
// anything runs.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

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

func (p *plan) entryDir() string { return filepath.Join(p.kernelsDir(), p.key) }

// planBuild resolves opts into a plan: the source and its identity, the
// full patch series, the base to build incrementally from, and the key.
func planBuild(ctx context.Context, opts BuildOptions) (*plan, error) {
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
