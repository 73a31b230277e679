package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained HTML page (inline SVG,
// no script, no external resources): a throughput chart (celerity, the
// raw ceiling and Python Celery per scenario, log scale), the latency
// distributions, and the tables of WriteTable.
func (rep *Report) WriteHTML(w io.Writer) error {
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		return err
	}
	data := struct {
		Title      string
		Throughput template.HTML
		Latency    template.HTML
		Table      string
	}{
		Title:      fmt.Sprintf("celerity bench: %s, %s", rep.Settings.Transport, rep.Started.UTC().Format(time.RFC3339)),
		Throughput: template.HTML(throughputSVG(rep)),
		Latency:    template.HTML(latencySVG(rep)),
		Table:      table.String(),
	}
	return pageTmpl.Execute(w, data)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
pre{background:#f6f6f6;padding:1em;overflow:auto}
svg text{font-family:system-ui,sans-serif;font-size:12px}
</style></head><body>
<h1>{{.Title}}</h1>
<h2>Throughput</h2>
{{.Throughput}}
<h2>Round-trip latency</h2>
{{.Latency}}
<h2>Figures</h2>
<pre>{{.Table}}</pre>
</body></html>
`))

// Series colours: celerity, raw ceiling, Python Celery.
var colours = [3]string{"#1f77b4", "#999999", "#2ca02c"}

func esc(s string) string { return template.HTMLEscapeString(s) }

// logTicks returns the powers of ten from lo to hi.
func logTicks(lo, hi float64) []float64 {
	var t []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		t = append(t, math.Pow(10, e))
	}
	return t
}

// throughputSVG draws one group of horizontal bars per rate scenario.
func throughputSVG(rep *Report) string {
	type bar struct {
		label string
		rate  float64
		col   int
	}
	type group struct {
		name string
		bars []bar
	}
	var groups []group
	lo, hi := math.Inf(1), 0.0
	for _, r := range rep.Results {
		if r.Skipped != "" || r.Latency != nil || r.Rate <= 0 {
			continue
		}
		g := group{name: r.Scenario, bars: []bar{{"celerity", r.Rate, 0}}}
		for i, f := range []*Figure{r.Ceiling, r.Celery} {
			if f != nil && f.Skipped == "" && f.Rate > 0 {
				g.bars = append(g.bars, bar{f.What, f.Rate, i + 1})
			}
		}
		for _, b := range g.bars {
			lo, hi = min(lo, b.rate), max(hi, b.rate)
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return "<p>No throughput scenario ran.</p>"
	}
	ticks := logTicks(lo, hi)
	tlo, thi := math.Log10(ticks[0]), math.Log10(ticks[len(ticks)-1])
	if thi <= tlo {
		thi = tlo + 1
	}
	const left, width, barH = 130, 560, 16
	x := func(v float64) float64 { return left + (math.Log10(v)-tlo)/(thi-tlo)*width }
	var b strings.Builder
	y := 10
	var body strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&body, `<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>`, left-8, y+12, esc(g.name))
		for _, br := range g.bars {
			fmt.Fprintf(&body, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s/s</title></rect>`,
				left, y, max(x(br.rate)-left, 1), barH-2, colours[br.col], esc(br.label), fmtRate(br.rate))
			fmt.Fprintf(&body, `<text x="%.1f" y="%d">%s %s/s</text>`, x(br.rate)+4, y+12, esc(br.label), fmtRate(br.rate))
			y += barH
		}
		y += 10
	}
	h := y + 30
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="tasks per second">`, left+width+220, h)
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="5" y2="%d" stroke="#ddd"/>`, x(t), x(t), y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(t), y+15, fmtRate(t))
	}
	b.WriteString(body.String())
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">tasks/s (log scale)</text>`, left+width/2, y+28)
	b.WriteString(`</svg>`)
	return b.String()
}

// latencySVG draws the latency CDFs (log-scale time) of the round-trip
// scenario for each implementation that has one.
func latencySVG(rep *Report) string {
	type line struct {
		label string
		pts   []CDFPoint
		col   int
		l     *Latency
	}
	var lines []line
	for _, r := range rep.Results {
		if r.Latency == nil || len(r.CDF) == 0 {
			continue
		}
		lines = append(lines, line{"celerity", r.CDF, 0, r.Latency})
		for i, f := range []*Figure{r.Ceiling, r.Celery} {
			if f != nil && len(f.CDF) > 0 {
				lines = append(lines, line{f.What, f.CDF, i + 1, f.Latency})
			}
		}
	}
	if len(lines) == 0 {
		return "<p>No latency scenario ran.</p>"
	}
	lo, hi := math.Inf(1), 0.0
	for _, ln := range lines {
		lo = min(lo, float64(max(ln.pts[0].Value, 1)))
		hi = max(hi, float64(ln.pts[len(ln.pts)-1].Value))
	}
	ticks := logTicks(lo, max(hi, lo*10))
	tlo, thi := math.Log10(ticks[0]), math.Log10(ticks[len(ticks)-1])
	const left, top, width, height = 60, 10, 600, 300
	x := func(v time.Duration) float64 {
		return left + (math.Log10(float64(max(v, 1)))-tlo)/(thi-tlo)*width
	}
	y := func(f float64) float64 { return top + (1-f)*height }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="latency distribution">`, left+width+260, top+height+50)
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>`, x(time.Duration(t)), x(time.Duration(t)), top, top+height)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x(time.Duration(t)), top+height+15, fmtDuration(time.Duration(t)))
	}
	for _, f := range []float64{0, 0.5, 0.9, 0.99, 1} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`, left, left+width, y(f), y(f))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g%%</text>`, left-6, y(f)+4, f*100)
	}
	for i, ln := range lines {
		var pts strings.Builder
		prev := 0.0
		for j, p := range ln.pts {
			if j == 0 {
				fmt.Fprintf(&pts, "%.1f,%.1f ", x(p.Value), y(0))
			}
			fmt.Fprintf(&pts, "%.1f,%.1f %.1f,%.1f ", x(p.Value), y(prev), x(p.Value), y(p.Fraction))
			prev = p.Fraction
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, colours[ln.col], pts.String())
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`, left+width+16, top+10+i*36, colours[ln.col])
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, left+width+34, top+20+i*36, esc(ln.label))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">p50 %s  p99 %s  p99.9 %s</text>`, left+width+34, top+36+i*36,
			fmtDuration(ln.l.P50), fmtDuration(ln.l.P99), fmtDuration(ln.l.P999))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">round-trip time (log scale); fraction of round trips at or below it</text>`, left+width/2, top+height+40)
	b.WriteString(`</svg>`)
	return b.String()
}
