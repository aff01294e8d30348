package main

import (
	"context"
	"fmt"
	"io"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
)

// guestModules are the modules a modular kernel (Debian's) needs in the
// image for the agent port and the test disk; yank's own kernels have them
// built in.
var guestModules = []string{"virtio_pci", "virtio_blk", "virtio_console"}

// resolveKernel returns the kernel for a variant name, building it (with
// progress on w) if it is not cached.
func resolveKernel(ctx context.Context, variant string, w io.Writer) (kernels.Artifact, error) {
	if variant == "debian" {
		return kernels.Debian()
	}
	return kernels.Build(ctx, kernels.BuildOptions{Variant: variant, Progress: w})
}

// guestSpec builds (or reuses) the image that fits kernel and returns the
// standard hotplug guest spec for it.
func guestSpec(ctx context.Context, name string, k kernels.Artifact) (machine.Spec, error) {
	opts := images.Options{}
	if k.ModulesDir != "" {
		opts.ModulesDir, opts.Modules = k.ModulesDir, guestModules
	}
	img, err := images.Build(ctx, opts)
	if err != nil {
		return machine.Spec{}, fmt.Errorf("guest image: %w", err)
	}
	return machine.HotplugGuest(name, k.BzImage, img.Path), nil
}
