package main

import (
	"context"
	"fmt"
	"io"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
)

type guest struct {
	name, kernel, initrd string
}

// prepareGuest resolves a kernel (a variant name, building it if needed,
// or a path to a bzImage) and the image that fits it.
func prepareGuest(ctx context.Context, kernel string, progress io.Writer) (guest, error) {
	k, err := kernels.Resolve(ctx, kernel, progress)
	if err != nil {
		return guest{}, err
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		return guest{}, fmt.Errorf("guest image: %w", err)
	}
	return guest{name: kernel, kernel: k.BzImage, initrd: img.Path}, nil
}
