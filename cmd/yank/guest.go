package main

import (
	"context"
	"fmt"
	"io"

	"github.com/yank-dev/yank/kernels"
)

// parseKernels reads a -kernels list and checks, before anything is built,
// that every series applies to its base.
func parseKernels(ctx context.Context, cmd, list string) ([]kernels.Spec, error) {
	specs, err := kernels.ParseSpecs(list)
	if err != nil {
		return nil, fmt.Errorf("%s: -kernels: %w", cmd, err)
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s: -kernels is empty: name at least one kernel (%s)", cmd, kernels.SpecSyntax)
	}
	for _, s := range specs {
		if err := s.Check(ctx, ""); err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
	}
	return specs, nil
}

// useVariants applies a -variants flag (or the default file in the
// working directory) and says which file is in use.
func useVariants(file string, log io.Writer) error {
	used, err := kernels.UseVariantsFile(file)
	if err != nil {
		return err
	}
	if used != "" && log != nil {
		fmt.Fprintf(log, "variants: built-in + %s\n", used)
	}
	return nil
}
