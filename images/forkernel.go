package images

import "context"

// GuestModules are what a modular kernel (Debian's) needs loaded for the
// agent port and the test disk; yank's own kernels have them built in.
var GuestModules = []string{"virtio_pci", "virtio_blk", "virtio_console"}

// ForKernel builds (or reuses) the image for a kernel whose modules live in
// modulesDir ("" for kernels with everything built in).
func ForKernel(ctx context.Context, modulesDir string) (Image, error) {
	opts := Options{}
	if modulesDir != "" {
		opts.ModulesDir, opts.Modules = modulesDir, GuestModules
	}
	return Build(ctx, opts)
}
