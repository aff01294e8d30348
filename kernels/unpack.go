package kernels

// The unpack stage: a source tree (and object dir) for the build to work in.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

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
		dir := TreeBuildDir(b.root, b.tree)
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
		b.marker = filepath.Join(dir, buildMarker)
		if err := mkdirPrivate(b.obj); err != nil {
			return err
		}
		n, err := discardInterruptedBuild(b.obj, b.marker, b.log)
		if n > 0 {
			b.progressf("%s: the last build of this tree was interrupted: removed the %d files it wrote, make redoes them", b.variant, n)
		}
		return err
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

// TreeBuildDir is where a kernel tree's kept object dir (obj) and its lock
// live in the cache at root.
func TreeBuildDir(root, tree string) string {
	return filepath.Join(root, "trees", sha256Hex([]byte(tree))[:16])
}

// unpackTarball extracts the tarball once into <root>/src/<sha16>/linux and
// returns that directory. The extraction happens in a temp dir renamed into
// place, under a lock, so a killed unpack leaves nothing half done.
func unpackTarball(ctx context.Context, root, tarball, sum string, progress io.Writer) (string, error) {
	srcRoot := filepath.Join(root, "src")
	if err := mkdirPrivate(srcRoot); err != nil {
		return "", err
	}
	final := filepath.Join(srcRoot, sum[:16])
	tree := filepath.Join(final, "linux")
	if exists(filepath.Join(tree, "Makefile")) {
		return tree, nil
	}
	l, err := lock(ctx, filepath.Join(srcRoot, sum[:16]+".lock"))
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	if exists(filepath.Join(tree, "Makefile")) {
		return tree, nil
	}
	cleanStale(srcRoot, sum[:16])
	tmp := filepath.Join(srcRoot, tmpPrefix+sum[:16]+"-"+randomSuffix())
	if err := mkdirPrivate(tmp); err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if progress != nil {
		fmt.Fprintf(progress, "unpack: %s\n", tarball)
	}
	var out bytes.Buffer
	if err := run(ctx, tmp, nil, &out, "tar", "-xf", tarball, "--no-same-owner"); err != nil {
		return "", fmt.Errorf("unpacking %s: %w\n%s", tarball, err, lastLines(out.String(), 10))
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return "", err
	}
	if len(ents) != 1 || !ents[0].IsDir() || !exists(filepath.Join(tmp, ents[0].Name(), "Makefile")) {
		return "", fmt.Errorf("unpacking %s: expected one top-level kernel directory", tarball)
	}
	if err := os.Rename(filepath.Join(tmp, ents[0].Name()), filepath.Join(tmp, "linux")); err != nil {
		return "", err
	}
	os.RemoveAll(final) // a leftover without Makefile is junk
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return tree, nil
}
