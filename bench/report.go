package bench

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	json "github.com/goccy/go-json"
)

// Report is what Run measured: the settings, the machine and one Result
// per scenario. It encodes to JSON as written by WriteJSON.
type Report struct {
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Machine  Machine       `json:"machine"`
	Settings Settings      `json:"settings"`
	Results  []Result      `json:"results"`
}

// Machine describes where the figures come from.
type Machine struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
}

// Settings are the knobs a run used (Config after defaults, without the
// functions and writers).
type Settings struct {
	Transport          string   `json:"transport"`
	Broker             string   `json:"broker"` // password redacted
	Backend            string   `json:"backend,omitempty"`
	Scenarios          []string `json:"scenarios"`
	N                  int      `json:"n"`
	LatencyN           int      `json:"latency_n"`
	Concurrency        int      `json:"concurrency"`
	PrefetchMultiplier int      `json:"prefetch_multiplier"`
	Producers          int      `json:"producers"`
	Batch              int      `json:"batch"`
	Clients            int      `json:"clients"`
	CanvasWidth        int      `json:"canvas_width"`
	Payload            int      `json:"payload_bytes"`
	Serializer         string   `json:"serializer"`
	Compression        string   `json:"compression,omitempty"`
	AcksLate           bool     `json:"acks_late"`
	Pool               string   `json:"pool"`
	Compare            string   `json:"compare,omitempty"`
}

// Result is one scenario's figures. Ratios compare our figure with
// another's as a speed: above 1 we are faster, below 1 slower (for a
// latency scenario, the other's p50 over ours). A ratio of 0 means there
// was nothing to compare with.
type Result struct {
	Scenario    string `json:"scenario"`
	Description string `json:"description"`
	// Skipped says why the scenario did not run (Tasks and figures are
	// then zero).
	Skipped string `json:"skipped,omitempty"`

	Tasks   int           `json:"tasks"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rate is tasks (or round trips) per second.
	Rate float64 `json:"rate"`
	// Latency is set for the round-trip scenario.
	Latency *Latency `json:"latency,omitempty"`
	// CDF is the latency distribution, for the plot.
	CDF []CDFPoint `json:"cdf,omitempty"`
	// Failed counts tasks that did not succeed.
	Failed int `json:"failed,omitempty"`

	Alloc Alloc `json:"alloc"`

	Ceiling      *Figure `json:"ceiling,omitempty"`
	CeilingRatio float64 `json:"ceiling_ratio,omitempty"`
	Celery       *Figure `json:"celery,omitempty"`
	CeleryRatio  float64 `json:"celery_ratio,omitempty"`
}

// Figure is the same scenario measured by something else: the transport's
// raw ceiling or Python Celery.
type Figure struct {
	What    string        `json:"what"`
	Tasks   int           `json:"tasks"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Rate    float64       `json:"rate"`
	Latency *Latency      `json:"latency,omitempty"`
	CDF     []CDFPoint    `json:"cdf,omitempty"`
	// Skipped says why there is no figure.
	Skipped string `json:"skipped,omitempty"`
}

// Alloc is what the process allocated and collected during a scenario's
// timed part (runtime.MemStats deltas), per task.
type Alloc struct {
	AllocsPerTask float64       `json:"allocs_per_task"`
	BytesPerTask  float64       `json:"bytes_per_task"`
	GCs           uint32        `json:"gcs"`
	GCPauseTotal  time.Duration `json:"gc_pause_total_ns"`
	GCPauseMax    time.Duration `json:"gc_pause_max_ns"`
}

// memSnapshot is the part of runtime.MemStats a scenario diffs.
type memSnapshot struct {
	mallocs, bytes uint64
	numGC          uint32
	pauseTotal     uint64
	pauses         [256]uint64
}

func readMem() memSnapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{mallocs: ms.Mallocs, bytes: ms.TotalAlloc, numGC: ms.NumGC,
		pauseTotal: ms.PauseTotalNs, pauses: ms.PauseNs}
}

// allocDelta returns the allocations and collections between two
// snapshots, per task (tasks <= 0 leaves the per-task figures at 0). The
// longest pause is looked for among the last 256 collections, which is all
// the runtime keeps.
func allocDelta(before, after memSnapshot, tasks int) Alloc {
	a := Alloc{
		GCs:          after.numGC - before.numGC,
		GCPauseTotal: time.Duration(after.pauseTotal - before.pauseTotal),
	}
	if tasks > 0 {
		a.AllocsPerTask = float64(after.mallocs-before.mallocs) / float64(tasks)
		a.BytesPerTask = float64(after.bytes-before.bytes) / float64(tasks)
	}
	for k := before.numGC + 1; k <= after.numGC && after.numGC-k < 256; k++ {
		a.GCPauseMax = max(a.GCPauseMax, time.Duration(after.pauses[(k+255)%256]))
	}
	return a
}

// Rate returns n per second of d, 0 when d is not positive.
func Rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Ratio returns ours / other, 0 when either is not a positive finite
// number (nothing to compare).
func Ratio(ours, other float64) float64 {
	if !(ours > 0) || !(other > 0) || math.IsInf(ours, 0) || math.IsInf(other, 0) {
		return 0
	}
	return ours / other
}

// speedRatio compares r with f as a speed: rates for throughput, the
// inverse of p50 for latency.
func speedRatio(r *Result, f *Figure) float64 {
	if f == nil || f.Skipped != "" {
		return 0
	}
	if r.Latency != nil && f.Latency != nil {
		return Ratio(float64(f.Latency.P50), float64(r.Latency.P50))
	}
	return Ratio(r.Rate, f.Rate)
}

// finish computes the ratios of every result.
func (rep *Report) finish() {
	for i := range rep.Results {
		r := &rep.Results[i]
		r.CeilingRatio = speedRatio(r, r.Ceiling)
		r.CeleryRatio = speedRatio(r, r.Celery)
	}
}

// WriteJSON writes the report as one indented JSON document.
func (rep *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: encode report: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// WriteTable writes the report for people: a header with the settings
// and the machine, a throughput table, a latency table, and the reasons of
// whatever was skipped.
func (rep *Report) WriteTable(w io.Writer) error {
	s, m := rep.Settings, rep.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "celerity bench: %s (%s)\n", s.Transport, s.Broker)
	compression := s.Compression
	if compression == "" {
		compression = "no compression"
	}
	acks := "early acks"
	if s.AcksLate {
		acks = "acks_late"
	}
	fmt.Fprintf(&b, "  n=%d, latency n=%d, concurrency %d, prefetch x%d, %d producer(s), batch %d, %d latency client(s), chords of %d\n",
		s.N, s.LatencyN, s.Concurrency, s.PrefetchMultiplier, s.Producers, s.Batch, s.Clients, s.CanvasWidth)
	fmt.Fprintf(&b, "  payload %d B, %s, %s, %s, %s pool\n", s.Payload, s.Serializer, compression, acks, s.Pool)
	cpu := ""
	if m.CPUModel != "" {
		cpu = ", " + m.CPUModel
	}
	fmt.Fprintf(&b, "  %s %s/%s, %d CPUs (GOMAXPROCS %d)%s; %s total\n\n",
		m.GoVersion, m.OS, m.Arch, m.CPUs, m.GOMAXPROCS, cpu, rep.Elapsed.Round(time.Millisecond))

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\ttasks\ttime\ttasks/s\traw/s\tvs raw\tcelery/s\tvs celery\tallocs/task\tB/task\tGCs\tGC pause max\t")
	var skipped, notes []string
	for _, r := range rep.Results {
		if r.Skipped != "" {
			skipped = append(skipped, fmt.Sprintf("  %s: %s", r.Scenario, r.Skipped))
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%d\t%s\t\n",
			r.Scenario, r.Tasks, fmtDuration(r.Elapsed), fmtRate(r.Rate),
			figureRate(r.Ceiling), fmtRatio(r.CeilingRatio), figureRate(r.Celery), fmtRatio(r.CeleryRatio),
			r.Alloc.AllocsPerTask, fmtBytes(r.Alloc.BytesPerTask), r.Alloc.GCs, fmtDuration(r.Alloc.GCPauseMax))
		for _, f := range []*Figure{r.Ceiling, r.Celery} {
			if f != nil && f.Skipped != "" {
				notes = append(notes, fmt.Sprintf("  %s, %s: %s", r.Scenario, f.What, f.Skipped))
			}
		}
		if r.Failed > 0 {
			notes = append(notes, fmt.Sprintf("  %s: %d task(s) did not succeed", r.Scenario, r.Failed))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	first := true
	for _, r := range rep.Results {
		if r.Latency == nil {
			continue
		}
		if first {
			b.WriteString("\nround-trip latency (send, run, result), from an HDR histogram:\n")
			tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "\tround trips\tp50\tp90\tp99\tp99.9\tmax\tmean\t")
			first = false
		}
		writeLatencyRow(tw, "celerity "+r.Scenario, r.Latency)
		for _, f := range []*Figure{r.Ceiling, r.Celery} {
			if f != nil && f.Latency != nil {
				writeLatencyRow(tw, f.What, f.Latency)
			}
		}
	}
	if !first {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	b.WriteString("\nvs raw / vs celery: our speed relative to the raw transport ceiling and to Python Celery\n" +
		"(rate ratio; for latency, their p50 over ours): above 1x faster, below 1x slower.\n")
	if len(notes) > 0 {
		b.WriteString("\nnotes:\n" + strings.Join(notes, "\n") + "\n")
	}
	if len(skipped) > 0 {
		b.WriteString("\nskipped:\n" + strings.Join(skipped, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLatencyRow(w io.Writer, name string, l *Latency) {
	fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, l.Count, fmtDuration(l.P50), fmtDuration(l.P90),
		fmtDuration(l.P99), fmtDuration(l.P999), fmtDuration(l.Max), fmtDuration(l.Mean))
}

func figureRate(f *Figure) string {
	if f == nil || f.Skipped != "" || f.Rate <= 0 {
		return "-"
	}
	return fmtRate(f.Rate)
}

// fmtRate prints a rate with three significant digits and a k/M suffix.
func fmtRate(r float64) string {
	switch {
	case r <= 0:
		return "-"
	case r >= 1e9:
		return fmt.Sprintf("%.3gG", r/1e9)
	case r >= 1e6:
		return fmt.Sprintf("%.3gM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.3gk", r/1e3)
	default:
		return fmt.Sprintf("%.3g", r)
	}
}

func fmtRatio(r float64) string {
	if r <= 0 {
		return "-"
	}
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0fx", r)
	case r >= 0.1:
		return fmt.Sprintf("%.2fx", r)
	default:
		return fmt.Sprintf("%.2gx", r)
	}
}

func fmtBytes(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1fM", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fk", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f", b)
	}
}

// fmtDuration prints d with three significant digits in a fitting unit.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3gs", d.Seconds())
	}
}
