package kernels

// A kept object dir (a tree's, reused from commit to commit) must survive a
// build that never ended.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// buildMarker sits beside a kept object dir while make runs in it. Kbuild
// deletes a target whose recipe fails (.DELETE_ON_ERROR), but a build that
// is killed (SIGKILL to its group on cancel, a lost machine) leaves objects
// cut short with fresh mtimes, which make then takes as up to date: every
// later build of the tree fails to link, or links a stale mix, and a
// bisect skips every commit it has to build.
const buildMarker = "build-in-progress"

// discardInterruptedBuild removes, when the marker says the last build in
// obj never ended, every regular file that build may have written (mtime
// at or after the marker's, less a second for coarse mtimes), so make
// rebuilds them. It returns how many it removed.
func discardInterruptedBuild(obj, marker string, log io.Writer) (int, error) {
	st, err := os.Stat(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	since := st.ModTime().Add(-time.Second)
	n := 0
	err = filepath.WalkDir(obj, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.ModTime().Before(since) {
			return nil
		}
		n++
		return os.Remove(p)
	})
	if err != nil {
		return n, fmt.Errorf("kernels: cleaning up after the interrupted build in %s: %w", obj, err)
	}
	fmt.Fprintf(log, "the last build in %s never ended (started %s): removed the %d files it wrote\n", obj, st.ModTime().UTC().Format(time.RFC3339), n)
	return n, os.Remove(marker)
}

// exitedByItself says a command ended with an exit status of its own, not
// killed by a signal (the OOM killer's included).
func exitedByItself(err error) bool {
	var ee *exec.ExitError
	return err == nil || (errors.As(err, &ee) && ee.ExitCode() >= 0)
}
