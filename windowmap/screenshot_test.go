package windowmap

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPlotInChromium renders map.html in Debian's headless Chromium and
// counts the plot's colours in the screenshot: the hang-rate series
// (#d62728), the MISSED series (#7f7f7f) and the dashed edge (#1f77b4)
// must all be drawn. make test installs chromium (make report-deps); the
// fast lane skips without it.
func TestPlotInChromium(t *testing.T) {
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
		t.Skip("no chromium (apt-get install chromium)")
	}
	w := &window{close: 733 * time.Millisecond}
	m, err := Sweep(context.Background(), w.run, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "map.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := HTML(f, "stock unbind-race (model)", "test", m); err != nil {
		t.Fatal(err)
	}
	f.Close()
	shot := filepath.Join(dir, "map.png")
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1000,700", "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	count := map[[3]uint32]int{}
	want := map[string][3]uint32{"hang rate": {0xd6, 0x27, 0x28}, "MISSED": {0x7f, 0x7f, 0x7f}, "edge": {0x1f, 0x77, 0xb4}}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			count[[3]uint32{r >> 8, g >> 8, bl >> 8}]++
		}
	}
	near := func(a, b uint32) bool { return a+24 >= b && a <= b+24 }
	for name, c := range want {
		n := 0 // anti-aliased edges blend: count the colour's neighbourhood
		for got, k := range count {
			if near(got[0], c[0]) && near(got[1], c[1]) && near(got[2], c[2]) {
				n += k
			}
		}
		least := 100
		if name == "edge" {
			least = 40 // one dashed line
		}
		if n < least {
			t.Errorf("%s series: %d pixels near #%02x%02x%02x, want at least %d", name, n, c[0], c[1], c[2], least)
		}
	}
	if keep := os.Getenv("YANK_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(keep, b, 0o644)
	}
}
