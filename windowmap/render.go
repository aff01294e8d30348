package windowmap

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the probes, one line each, and the edges.
func WriteTable(w io.Writer, m *Map) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELAY\tTRIALS\tHANG\tPASS\tRECOVERED\tMISSED\tOTHER\tHANG RATE (of tested, 95% CI)\tIN WINDOW (95% CI)\tSTATE")
	for _, p := range m.Probes {
		r := p.Rate
		rate := "not tested"
		if r.Tested > 0 {
			rate = fmt.Sprintf("%.0f %% (%.0f-%.0f %%)", 100*r.Value(), 100*r.Lo, 100*r.Hi)
		}
		pass := r.Tested - r.Hangs - r.Recovered - r.Crash
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.0f %% (%.0f-%.0f %%)\t%s\n", time.Duration(p.Delay), len(p.Outcomes), r.Hangs, pass,
			r.Recovered, r.Missed, r.Crash+r.Infra+r.Unreached, rate, 100*p.In, 100*p.InLo, 100*p.InHi, p.State)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nwindow start: %s\nwindow end:   %s\n%d trials\n", m.Start.describe("opens"), m.End.describe("closes"), m.Trials)
}

func (e Edge) describe(verb string) string {
	if !e.Found {
		return "not found: " + e.Note
	}
	if e.Inside == 0 && e.Outside == 0 {
		return e.Note
	}
	return fmt.Sprintf("%s %s (%s)", verb, e.Note, sharpness(e))
}

func sharpness(e Edge) string {
	d := time.Duration(e.Outside - e.Inside)
	if d < 0 {
		d = -d
	}
	return "to within " + d.String()
}

// Page is what map.html shows.
type Page struct {
	Title   string
	Command string // the command line that made it
	Map     *Map
	Table   string // WriteTable's text
	Plot    template.HTML
}

var pageTmpl = template.Must(template.New("map").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body { font-family: sans-serif; margin: 2em; }
pre { background: #f4f4f4; padding: 1em; }
.legend span { display: inline-block; margin-right: 2em; }
.hang { color: #d62728; } .missed { color: #7f7f7f; }
</style></head><body>
<h1>{{.Title}}</h1>
<p><code>{{.Command}}</code></p>
<p class="legend"><span class="hang">&#9679; hang rate (of tested trials)</span><span class="missed">&#9679; MISSED share</span> against the delay after the anchor's hit; dashed: the window's edges.</p>
{{.Plot}}
<h2>Probes</h2>
<pre>{{.Table}}</pre>
</body></html>
`))

// HTML writes a page with the plot and the table.
func HTML(w io.Writer, title, command string, m *Map) error {
	var t strings.Builder
	WriteTable(&t, m)
	return pageTmpl.Execute(w, Page{Title: title, Command: command, Map: m, Table: t.String(), Plot: template.HTML(Plot(m))})
}

// Plot is an SVG of hang rate and MISSED share against delay.
func Plot(m *Map) string {
	const W, H, L, R, T, B = 900.0, 360.0, 60.0, 20.0, 20.0, 50.0
	maxD := time.Millisecond
	for _, p := range m.Probes {
		maxD = max(maxD, time.Duration(p.Delay))
	}
	x := func(d time.Duration) float64 { return L + (W-L-R)*float64(d)/float64(maxD) }
	y := func(v float64) float64 { return T + (H-T-B)*(1-v) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, W, H, W, H)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="#ffffff" stroke="#000000"/>`, L, T, W-L-R, H-T-B)
	for _, v := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="12" text-anchor="end">%.0f %%</text>`, L-6, y(v)+4, 100*v)
	}
	for i := 0; i <= 4; i++ {
		d := maxD * time.Duration(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="12" text-anchor="middle">%s</text>`, x(d), H-B+18, d.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle">delay after the anchor's hit</text>`, L+(W-L-R)/2, H-8)
	for _, e := range []Edge{m.Start, m.End} {
		if !e.Found || (e.Inside == 0 && e.Outside == 0) {
			continue
		}
		mid := time.Duration(e.Inside+e.Outside) / 2
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#1f77b4" stroke-dasharray="6,4" stroke-width="3" shape-rendering="crispEdges"/>`, x(mid), T, x(mid), H-B)
	}
	series := func(color string, v func(Probe) (float64, bool)) {
		var pts []string
		for _, p := range m.Probes {
			if val, ok := v(p); ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(time.Duration(p.Delay)), y(val)))
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="3" points="%s"/>`, color, strings.Join(pts, " "))
		}
		for _, pt := range pts {
			xy := strings.Split(pt, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="6" fill="%s"/>`, xy[0], xy[1], color)
		}
	}
	series("#7f7f7f", func(p Probe) (float64, bool) { return p.MissedShare(), p.Rate.Tested+p.Rate.Missed > 0 })
	series("#d62728", func(p Probe) (float64, bool) { return p.Rate.Value(), p.Rate.Tested > 0 })
	b.WriteString(`</svg>`)
	return b.String()
}
