package kernels

// The builder runs a plan's stages in a temp dir, timing each one.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

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
	marker    string // buildMarker of a kept object dir, "" for a temp one
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

// runStages runs unpack, patch, config, build and install in a fresh temp
// dir next to the entries; install renames it into place.
func (b *builder) runStages(ctx context.Context) error {
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
	if err := b.stage("build", func() error { return b.compile(ctx) }); err != nil {
		return err
	}
	return b.stage("install", func() error { return b.install(ctx) })
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
