package report

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeReport renders the fixture matrix to dir/report.html.
func writeReport(t *testing.T, dir string) (string, Model) {
	m := Build(Input{Records: matrixRecords(t, filepath.Join(dir, "artifacts")), Seeds: []int64{7}, Sources: []string{"fixture"}}, dir)
	var b bytes.Buffer
	if err := Render(&b, m); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "report.html")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, m
}

func TestRender(t *testing.T) {
	p, m := writeReport(t, t.TempDir())
	b, _ := os.ReadFile(p)
	html := string(b)
	for _, want := range []string{
		`<span class="count">3/5</span>`, `<span class="count">5/5</span>`, `1 INFRA-ERROR`,
		`seed 7`, `unexpected: 3`,
		`href="#` + m.Cell("unbind-race", "stock", 1e9).Anchor + `"`, `id="` + m.Cell("unbind-race", "stock", 1e9).Anchor + `"`,
		`del_gendisk&#43;0x81/0x223`,                // the stuck stack, inline
		`unbind_store&#43;0x4f/0x6b &lt;script&gt;`, // escaped
		`href="artifacts/stock/unbind-race/1s-r1/console.log"`,
		`expected HANG unbind-del_gendisk, got PASS`,
		`class="problem"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %s", want)
		}
	}
	// The unexpected list links each failed trial.
	for _, tr := range m.Trials {
		if tr.Problem != "" && !strings.Contains(html, `<li><a href="#`+tr.ID+`">`) {
			t.Errorf("unexpected list lacks %s %s", tr.ID, tr.Problem)
		}
	}
	if strings.Contains(html, "<script>") {
		t.Error("unescaped stack text")
	}
}

// chromium finds Debian's headless browser. Without one the test skips,
// except in CI (CI=true), where `make report-deps` must have installed it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium in CI: `make report-deps` installs Debian's chromium")
	}
	t.Skip("no chromium (apt-get install chromium, or make report-deps)")
	return ""
}

// TestScreenshot renders the report in a real headless Chromium and checks
// the screenshot shows the heatmap: both its red (all hung) and green
// (none hung) cells. YANK_SCREENSHOT=path keeps the PNG.
func TestScreenshot(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	page, _ := writeReport(t, dir)
	shot := filepath.Join(dir, "report.png")
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1200,900", "file://"+page)
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
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1200x900", b.Dx(), b.Dy())
	}
	red, green := countHeat(img)
	if red < 500 || green < 500 {
		t.Errorf("heatmap not visible: %d red and %d green pixels", red, green)
	}
	if keep := os.Getenv("YANK_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		if err := os.WriteFile(keep, b, 0o644); err != nil {
			t.Fatal(err)
		}
		h, _ := os.ReadFile(page)
		os.WriteFile(strings.TrimSuffix(keep, ".png")+".html", h, 0o644)
	}
}

// countHeat counts pixels of the heatmap's end colours: hsl(0,65%,72%)
// is about rgb(230,137,137), hsl(120,65%,72%) about rgb(137,230,137).
func countHeat(img image.Image) (red, green int) {
	near := func(a, b uint32) bool { return a+12 >= b && a <= b+12 }
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			switch {
			case near(r, 230) && near(g, 137) && near(b, 137):
				red++
			case near(r, 137) && near(g, 230) && near(b, 137):
				green++
			}
		}
	}
	return red, green
}
