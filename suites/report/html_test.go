package report

import (
	"bytes"
	"github.com/yank-dev/yank/internal/chromium"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
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
	cellTD := func(sc, kernel string, off time.Duration) string {
		a := m.Cell(sc, kernel, off).Ref
		i := strings.Index(html, `<a href="#`+a+`"><span class="count">`)
		if i < 0 {
			t.Fatalf("no heatmap cell %s", a)
		}
		return html[strings.LastIndex(html[:i], "<td"):i]
	}
	for _, want := range []string{
		`<span class="count">3/5</span>`, `<span class="count">5/5</span>`, `1 INFRA-ERROR`,
		`seed 7`, `unexpected: 3`, `not judged: 4`, `hang rate below its rule: 1`,
		`href="#` + m.Cell("unbind-race", "stock", 1e9).Ref + `"`, `id="` + m.Cell("unbind-race", "stock", 1e9).Ref + `"`,
		`del_gendisk&#43;0x81/0x223`,                // the stuck stack, inline
		`unbind_store&#43;0x4f/0x6b &lt;script&gt;`, // escaped
		`href="artifacts/stock/unbind-race/1s-r1/console.log"`,
		`expected HANG unbind-del_gendisk (profile bad rule 1), got PASS`,
		`class="problem"`,
		// MISSED: counted apart, never green; the trial shows why it was not judged.
		`<span class="count">not tested</span><br><span class="sub">2 missed</span>`,
		`<span class="count">2/3</span><br><span class="sub">1 missed</span>`,
		`<span class="o-missed">MISSED</span>`,
		`<div class="not-judged">not judged: not tested: the trigger had already finished 12ms before the cut</div>`,
		`window: hit (want anything): trigger running, I/O outstanding 40ms before the cut`,
		// Rates with their Wilson interval: heading, table, failed rule.
		`surprise-io on stock at 2s: 2/3 hung (67 %, 95 % CI 21-94 %), 1 missed</h3>`,
		`<td>1/3 hung (33 %, 95 % CI 6-79 %)</td>`,
		`rfc-v3 surprise-io @2s</a>: 1/3 hung (33 %, 95 % CI 6-79 %): below the rate rule&#39;s 50 %`,
		`rate rule not judged: 1/1 hung (100 %, 95 % CI 21-100 %), 1 missed: 1 tested, the rate rule needs 3`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %s", want)
		}
	}
	// Cell colours: a MISSED-only cell is the not-tested stripes, a cell
	// with trials tested is coloured by hangs/tested (2/3 -> hue 40).
	if td := cellTD("unbind-race", "stock", 4*time.Second); !strings.Contains(td, "repeating-linear-gradient") || !strings.Contains(td, `title="nothing tested, 2 missed; 2 not judged"`) {
		t.Errorf("MISSED cell: %s", td)
	}
	if td := cellTD("surprise-io", "stock", 2*time.Second); !strings.Contains(td, "hsl(40, 65%, 72%)") || !strings.Contains(td, "95 % CI 21-94 %") || strings.Contains(td, "problem") {
		t.Errorf("2/3 cell: %s", td)
	}
	if td := cellTD("surprise-io", "rfc-v3", 2*time.Second); !strings.Contains(td, `class="problem"`) || !strings.Contains(td, "rate rule: problem") {
		t.Errorf("the failed rate cell is not outlined: %s", td)
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

// TestScreenshot renders the report in a real headless Chromium and checks
// the screenshot shows the heatmap: its red (all hung), green (none hung)
// and striped grey (nothing tested) cells. YANK_SCREENSHOT=path keeps the PNG.
func TestScreenshot(t *testing.T) {
	page, _ := writeReport(t, t.TempDir())
	img, shot := chromium.Screenshot(t, page, 1200, 900)
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1200x900", b.Dx(), b.Dy())
	}
	red, green, stripes := countHeat(img)
	if red < 500 || green < 500 || stripes < 300 {
		t.Errorf("heatmap not visible: %d red, %d green and %d not-tested stripe pixels", red, green, stripes)
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
// is about rgb(230,137,137), hsl(120,65%,72%) about rgb(137,230,137); and
// the dark stripe (#c8c8c8) of a cell where nothing was tested.
func countHeat(img image.Image) (red, green, stripes int) {
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
			case r == 200 && g == 200 && b == 200:
				stripes++
			}
		}
	}
	return red, green, stripes
}

// TestHeatRecovered: a cell where nothing hung but trials RECOVERED is
// not the clean green of a PASS: its hue moves to blue with their share;
// a hang still colours by the hang rate.
func TestHeatRecovered(t *testing.T) {
	cell := func(hangs, tested int, outcomes map[scenario.Outcome]int) *Cell {
		c := &Cell{Outcomes: outcomes}
		c.Hangs, c.Tested = hangs, tested
		return c
	}
	for _, tc := range []struct {
		c    *Cell
		want string
	}{
		{cell(0, 3, map[scenario.Outcome]int{scenario.Pass: 3}), "hsl(120, "},
		{cell(0, 3, map[scenario.Outcome]int{scenario.Recovered: 3}), "hsl(210, "},
		{cell(0, 3, map[scenario.Outcome]int{scenario.Pass: 2, scenario.Recovered: 1}), "hsl(150, "},
		{cell(3, 3, map[scenario.Outcome]int{scenario.Hang: 3}), "hsl(0, "},
		{cell(1, 2, map[scenario.Outcome]int{scenario.Hang: 1, scenario.Recovered: 1}), "hsl(60, "},
	} {
		if got := string(heat(tc.c)); !strings.Contains(got, tc.want) {
			t.Errorf("%d/%d %v: %s, want %s", tc.c.Hangs, tc.c.Tested, tc.c.Outcomes, got, tc.want)
		}
	}
}
