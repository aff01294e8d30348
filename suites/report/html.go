package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/yank-dev/yank/scenario"
)

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"heat":         heat,
	"recoveredHue": func() int { return recoveredHue },
	"notTested":    func() template.CSS { return notTested },
	"dur":          func(d scenario.Duration) string { return time.Duration(d).Round(time.Millisecond).String() },
	"ms":           func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"lower":        func(o scenario.Outcome) string { return strings.ToLower(string(o)) },
	"trial":        func(m Model, i int) Trial { return m.Trials[i] },
	"join":         func(s []string) string { return strings.Join(s, ", ") },
	"seeds": func(s []int64) string {
		var out []string
		for _, v := range s {
			out = append(out, fmt.Sprint(v))
		}
		return strings.Join(out, ", ")
	},
}).Parse(pageTemplate))

// notTested is the colour of a cell where nothing was tested (every
// trial MISSED or never judged): grey stripes, never mistaken for green.
const notTested = "background: repeating-linear-gradient(45deg, #c8c8c8 0 6px, #ececec 6px 12px)"

// heat colours a cell by hangs/tested: green (none hung) through amber to
// red (all). A cell where nothing hung but some trials RECOVERED (stalled,
// then went on) turns from green to blue with their share, so "stalled
// for seconds" never reads as a clean green.
func heat(c *Cell) template.CSS {
	if c.Tested == 0 {
		return notTested
	}
	hue := 120 * (1 - c.Value())
	if r := c.Outcomes[scenario.Recovered]; c.Hangs == 0 && r > 0 {
		hue = 120 + (recoveredHue-120)*float64(r)/float64(c.Tested)
	}
	return template.CSS(fmt.Sprintf("background: hsl(%.0f, 65%%, 72%%)", hue))
}

// recoveredHue is the colour of a cell whose tested trials all RECOVERED.
const recoveredHue = 210

// Render writes the report page.
func Render(w io.Writer, m Model) error { return page.Execute(w, m) }
