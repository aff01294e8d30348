package windowmap

import (
	"context"
	"github.com/yank-dev/yank/internal/chromium"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPlotInChromium renders map.html in Debian's headless Chromium and
// counts the plot's colours in the screenshot: the hang-rate series
// (#d62728), the MISSED series (#7f7f7f) and the dashed edge (#1f77b4)
// must all be drawn (internal/chromium: make test installs chromium).
func TestPlotInChromium(t *testing.T) {
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
	img, shot := chromium.Screenshot(t, page, 1000, 700)
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
