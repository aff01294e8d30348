// Package engine runs trial matrices, the one place where trials are
// planned and run: it prepares each kernel (building it as needed) with
// the image that fits it, expands a scenario.Matrix into trials over
// those guests, runs them on a machine.Pool (the local QEMU backend is a
// pool of one, libvirt hosts a pool of many), writes every trial's
// evidence under one layout (scenario.Planned.Dir) and returns the rows
// with per-cell rates. `yank run`, `yank libvirt`, `yank bisect-run` and
// the Ginkgo suites all run trials through it.
package engine

import (
	"context"
	"fmt"
	"io"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/snapshot"
	"github.com/yank-dev/yank/trial"
)

// Guest is a resolved kernel and the guest image that fits it.
type Guest struct {
	Name    string `json:"name"`   // as reports show it
	Kernel  string `json:"kernel"` // bzImage
	Initrd  string `json:"initrd"`
	Release string `json:"release,omitempty"`
}

// Prepare resolves a kernel spec (building it if needed, with progress on
// w) and makes the image that fits it.
func Prepare(ctx context.Context, spec kernels.Spec, w io.Writer) (Guest, error) {
	k, err := spec.Resolve(ctx, "", w)
	if err != nil {
		return Guest{}, err
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		return Guest{}, fmt.Errorf("guest image for kernel %s: %w", spec.Name, err)
	}
	return Guest{Name: spec.Name, Kernel: k.BzImage, Initrd: img.Path, Release: k.Release}, nil
}

// Trial is a planned trial with the guest it boots.
type Trial struct {
	scenario.Planned
	Guest  Guest
	Params scenario.Params // Offset comes from Planned.Offset
	Hooks  trial.Hooks     // yank's own fault-injection tests only
	// Snapshots starts the trial from a snapshot in this store (made by
	// the first trial of its cell); nil boots it cold. UseSnapshots sets it.
	Snapshots *snapshot.Store
	// PlanIndex is the trial's place in the whole plan (ShardTrials sets
	// it; a shard's rows carry it so that a merge restores the plan's order).
	PlanIndex int
}

// UseSnapshots sets every trial to start from a snapshot in the cache
// (the default of every command; on=false is -no-snapshot: cold boots).
func UseSnapshots(trials []Trial, on bool) error {
	var store *snapshot.Store
	if on {
		var err error
		if store, err = snapshot.Open(""); err != nil {
			return err
		}
	}
	for i := range trials {
		trials[i].Snapshots = store
	}
	return nil
}

// Plan expands the matrix over prepared guests (the matrix's kernels are
// the guests' names; it must not name its own). params are the knobs
// every trial shares.
func Plan(m scenario.Matrix, guests []Guest, params scenario.Params) ([]Trial, error) {
	if len(m.Kernels) > 0 {
		return nil, fmt.Errorf("engine.Plan: the matrix names kernels; they come from the guests")
	}
	byName := map[string]Guest{}
	for _, g := range guests {
		if _, dup := byName[g.Name]; dup {
			return nil, fmt.Errorf("kernel %s given twice (name one of them NAME=SPEC)", g.Name)
		}
		byName[g.Name] = g
		m.Kernels = append(m.Kernels, g.Name)
	}
	planned, err := m.Expand()
	if err != nil {
		return nil, err
	}
	var out []Trial
	checked := map[[2]string]bool{}
	for _, p := range planned {
		g := byName[p.Kernel]
		// An anchor must resolve in every kernel before any trial runs.
		if k := [2]string{g.Kernel, p.Anchor}; p.Anchor != "" && !checked[k] {
			checked[k] = true
			if _, _, _, err := trial.ResolveAnchor(p.Anchor, g.Kernel); err != nil {
				return nil, fmt.Errorf("scenario %s on kernel %s: %w", p.Scenario.Name, g.Name, err)
			}
		}
		out = append(out, Trial{Planned: p, Guest: g, Params: params})
	}
	return out, nil
}

// Name is the trial's name in logs: kernel, scenario, offset and repeat.
func (t Trial) Name() string {
	if t.Anchor != "" {
		return fmt.Sprintf("%s %s %s+%s r%d", t.Kernel, t.Scenario.Name, t.Anchor, t.Offset, t.Repeat)
	}
	return fmt.Sprintf("%s %s +%s r%d", t.Kernel, t.Scenario.Name, t.Offset, t.Repeat)
}

// RunOne runs one trial on backend (nil: a local QEMU process) with its
// evidence in t.Dir(root) (root "": evidence only in the verdict). It
// fails only on bad input; everything after the start is in the verdict.
func RunOne(ctx context.Context, backend machine.Backend, t Trial, root string, progress io.Writer) (scenario.Verdict, error) {
	p := t.Params
	p.Offset, p.Anchor = t.Offset, t.Anchor
	dir := ""
	if root != "" {
		dir = t.Dir(root)
	}
	return trial.Run(ctx, trial.Trial{
		Scenario: t.Scenario, Params: p, KernelName: t.Kernel, Kernel: t.Guest.Kernel, Initrd: t.Guest.Initrd,
		Artifacts: dir, Progress: progress, Hooks: t.Hooks, Backend: backend, Snapshots: t.Snapshots,
	})
}
