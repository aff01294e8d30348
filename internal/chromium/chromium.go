// Package chromium renders a local HTML page in Debian's headless
// Chromium for tests that check what a report looks like. make test
// installs chromium (make report-deps); without it a test fails, except
// under -short (the fast lane), where it skips.
package chromium

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Screenshot renders page (a file path) at width x height and returns
// the image and the PNG's path (in t's temp dir).
func Screenshot(t testing.TB, page string, width, height int) (image.Image, string) {
	t.Helper()
	var bin string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if !testing.Short() {
			t.Fatal("no chromium: `make report-deps` (part of make test) installs Debian's chromium")
		}
		t.Skip("no chromium (apt-get install chromium, or make report-deps)")
	}
	dir := t.TempDir()
	shot := filepath.Join(dir, "page.png")
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", width, height), "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img, shot
}
