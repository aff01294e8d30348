package kernels

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Resolve turns what a user names as a kernel into an Artifact: a variant
// from the manifest (built if not cached, with progress on w), "debian", or
// a path to any bzImage (anything containing a slash), used as is.
func Resolve(ctx context.Context, nameOrPath string, w io.Writer) (Artifact, error) {
	if strings.Contains(nameOrPath, "/") {
		abs, err := filepath.Abs(nameOrPath)
		if err != nil {
			return Artifact{}, err
		}
		if st, err := os.Stat(abs); err != nil || st.IsDir() {
			return Artifact{}, fmt.Errorf("kernel %s: not a file (give a variant from `yank kernel list` or a path to a bzImage): %v", nameOrPath, err)
		}
		return Artifact{Variant: abs, Key: "path:" + abs, BzImage: abs, Cached: true}, nil
	}
	if nameOrPath == "debian" {
		return Debian()
	}
	return Build(ctx, BuildOptions{Variant: nameOrPath, Progress: w})
}
