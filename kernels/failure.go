package kernels

// What a failed stage reports: the error, the log kept beside the entries,
// the lines that matter.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// BuildError is a failed build step, with the log lines that matter.
type BuildError struct {
	Variant string
	Stage   string
	LogPath string // kept after the temp dir is removed
	Excerpt string // first error lines with context
	Err     error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kernel %s: %s failed: %v", e.Variant, e.Stage, e.Err)
	if e.Excerpt != "" {
		fmt.Fprintf(&b, "\n%s", indent(e.Excerpt, "  | "))
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "\nfull log: %s", e.LogPath)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// fail keeps the log next to the entries and returns a BuildError.
func (b *builder) fail(stageName string, err error) error {
	be := &BuildError{Variant: b.variant, Stage: stageName, Err: err}
	var pe *PatchError
	var me *MissingOptionsError
	if errors.As(err, &pe) || errors.As(err, &me) {
		// These already say exactly what is wrong; the log adds nothing.
		return fmt.Errorf("kernel %s: %w", b.variant, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kernel %s: %s interrupted: %w", b.variant, stageName, err)
	}
	if b.log != nil {
		b.log.Sync()
		failed := filepath.Join(b.kernelsDir(), b.key+".failed.log")
		if data, rerr := os.ReadFile(b.log.Name()); rerr == nil {
			if os.WriteFile(failed, data, 0o600) == nil {
				be.LogPath = failed
			}
			be.Excerpt = ErrorExcerpt(string(data), 3, 3)
		}
	}
	return be
}

// ErrorExcerpt returns the first maxErrs "error:" lines of a build log with
// ctx lines of context around each (make's "Error N" lines when the log has
// no compiler error).
func ErrorExcerpt(log string, maxErrs, ctx int) string {
	lines := strings.Split(log, "\n")
	hits := firstMatches(lines, maxErrs, "error:", "Error:")
	if len(hits) == 0 {
		hits = firstMatches(lines, maxErrs, "***", "] Error ")
	}
	if len(hits) == 0 {
		return lastLines(log, 2*ctx+1)
	}
	keep := map[int]bool{}
	for _, h := range hits {
		for i := h - ctx; i <= h+ctx; i++ {
			if i >= 0 && i < len(lines) {
				keep[i] = true
			}
		}
	}
	var out []string
	prev := -2
	for _, i := range slices.Sorted(maps.Keys(keep)) {
		if i != prev+1 && prev >= 0 {
			out = append(out, "...")
		}
		out = append(out, lines[i])
		prev = i
	}
	return strings.Join(out, "\n")
}

// firstMatches returns the indexes of the first max lines that contain
// any of subs.
func firstMatches(lines []string, max int, subs ...string) []int {
	var hits []int
	for i, l := range lines {
		if slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(l, sub) }) {
			hits = append(hits, i)
			if len(hits) == max {
				break
			}
		}
	}
	return hits
}
