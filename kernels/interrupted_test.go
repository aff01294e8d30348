package kernels

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDiscardInterruptedBuild: with the marker present, the files written
// at or after it (cut short, as a killed build leaves them) go and the
// older ones stay; without it nothing is touched.
func TestDiscardInterruptedBuild(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		dir := t.TempDir()
		obj := filepath.Join(dir, "obj")
		marker := filepath.Join(dir, buildMarker)
		start := time.Now().Add(-time.Hour)
		files := map[string]time.Time{
			".config":                         start.Add(-time.Minute), // configure ran before make
			"drivers/base/core.o":             start.Add(-24 * time.Hour),
			"drivers/block/virtio_blk.o":      start.Add(10 * time.Second), // cut short
			"drivers/block/.virtio_blk.o.cmd": start.Add(9 * time.Second),
		}
		for name, mt := range files {
			p := filepath.Join(obj, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
		}
		if interrupted {
			if err := os.WriteFile(marker, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(marker, start, start); err != nil {
				t.Fatal(err)
			}
		}
		n, err := discardInterruptedBuild(obj, marker, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		wantGone := map[string]bool{"drivers/block/virtio_blk.o": interrupted, "drivers/block/.virtio_blk.o.cmd": interrupted}
		gone := 0
		for name := range files {
			_, err := os.Stat(filepath.Join(obj, name))
			if os.IsNotExist(err) != wantGone[name] {
				t.Errorf("interrupted=%v: %s removed=%v, want %v", interrupted, name, os.IsNotExist(err), wantGone[name])
			}
			if os.IsNotExist(err) {
				gone++
			}
		}
		if n != gone {
			t.Errorf("interrupted=%v: reported %d removed, %d are gone", interrupted, n, gone)
		}
		if _, err := os.Stat(marker); !os.IsNotExist(err) {
			t.Errorf("interrupted=%v: marker still there after the cleanup (%v)", interrupted, err)
		}
	}
}

// TestExitedByItself: an exit status is make's own end, a signal is not.
func TestExitedByItself(t *testing.T) {
	if !exitedByItself(nil) {
		t.Error("nil error: want exited by itself")
	}
	if err := exec.Command("sh", "-c", "exit 2").Run(); !exitedByItself(err) {
		t.Errorf("exit 2 (%v): want exited by itself", err)
	}
	if err := exec.Command("sh", "-c", "kill -KILL $$").Run(); exitedByItself(err) {
		t.Errorf("killed (%v): want not exited by itself", err)
	}
}
