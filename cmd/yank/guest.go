package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
)

// guestModules are the modules a modular kernel (Debian's) needs in the
// image for the agent port and the test disk; yank's own kernels have them
// built in.
var guestModules = []string{"virtio_pci", "virtio_blk", "virtio_console"}

type guest struct {
	name, kernel, initrd string
}

// prepareGuest resolves a kernel (a variant name, building it if needed,
// or a path to a bzImage) and the image that fits it.
func prepareGuest(ctx context.Context, kernel string, progress io.Writer) (guest, error) {
	var k kernels.Artifact
	var err error
	switch {
	case strings.Contains(kernel, "/"):
		if _, err := os.Stat(kernel); err != nil {
			return guest{}, fmt.Errorf("kernel %s: %w (give a variant name from `yank kernel list` or a path to a bzImage)", kernel, err)
		}
		k = kernels.Artifact{Variant: kernel, BzImage: kernel}
	case kernel == "debian":
		k, err = kernels.Debian()
	default:
		k, err = kernels.Build(ctx, kernels.BuildOptions{Variant: kernel, Progress: progress})
	}
	if err != nil {
		return guest{}, err
	}
	opts := images.Options{}
	if k.ModulesDir != "" {
		opts.ModulesDir, opts.Modules = k.ModulesDir, guestModules
	}
	img, err := images.Build(ctx, opts)
	if err != nil {
		return guest{}, fmt.Errorf("guest image: %w", err)
	}
	return guest{name: kernel, kernel: k.BzImage, initrd: img.Path}, nil
}
