package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

func TestRateAndRatio(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		d    time.Duration
		want float64
	}{
		{1000, time.Second, 1000}, {500, 250 * time.Millisecond, 2000}, {7, 0, 0}, {7, -time.Second, 0}, {0, time.Second, 0},
	} {
		if got := Rate(tc.n, tc.d); got != tc.want {
			t.Errorf("Rate(%d, %v) = %v, want %v", tc.n, tc.d, got, tc.want)
		}
	}
	for _, tc := range []struct {
		ours, other, want float64
	}{
		{200, 100, 2}, {50, 200, 0.25}, {1, 1, 1},
		{0, 100, 0}, {100, 0, 0}, {-1, 5, 0}, {math.NaN(), 1, 0}, {1, math.Inf(1), 0}, {math.Inf(1), 1, 0},
	} {
		if got := Ratio(tc.ours, tc.other); got != tc.want {
			t.Errorf("Ratio(%v, %v) = %v, want %v", tc.ours, tc.other, got, tc.want)
		}
	}
}

func TestSpeedRatioUsesRatesOrP50(t *testing.T) {
	t.Parallel()
	rate := Result{Rate: 3000}
	lat := Result{Rate: 10, Latency: &Latency{P50: 200 * time.Microsecond}}
	for _, tc := range []struct {
		name string
		r    *Result
		f    *Figure
		want float64
	}{
		{"faster than other", &rate, &Figure{Rate: 1000}, 3},
		{"slower than raw", &rate, &Figure{Rate: 12000}, 0.25},
		{"no figure", &rate, nil, 0},
		{"skipped figure", &rate, &Figure{Rate: 1000, Skipped: "not here"}, 0},
		// Their p50 over ours: half our latency is twice as fast.
		{"latency, other slower", &lat, &Figure{Rate: 1, Latency: &Latency{P50: 800 * time.Microsecond}}, 4},
		{"latency, other faster", &lat, &Figure{Rate: 1, Latency: &Latency{P50: 50 * time.Microsecond}}, 0.25},
	} {
		if got := speedRatio(tc.r, tc.f); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAllocDelta(t *testing.T) {
	t.Parallel()
	before := memSnapshot{mallocs: 1000, bytes: 1 << 20, numGC: 300, pauseTotal: 5000}
	after := before
	after.mallocs += 3000
	after.bytes += 64_000
	after.numGC = 303
	after.pauseTotal += 700
	// GC k's pause is at pauses[(k+255)%256]: GCs 301-303, and an older
	// larger one (GC 300) that must not count.
	after.pauses[(300+255)%256] = 9999
	after.pauses[(301+255)%256] = 100
	after.pauses[(302+255)%256] = 450
	after.pauses[(303+255)%256] = 150
	a := allocDelta(before, after, 1000)
	want := Alloc{AllocsPerTask: 3, BytesPerTask: 64, GCs: 3, GCPauseTotal: 700, GCPauseMax: 450}
	if a != want {
		t.Fatalf("allocDelta = %+v, want %+v", a, want)
	}
	if a := allocDelta(before, after, 0); a.AllocsPerTask != 0 || a.GCs != 3 {
		t.Fatalf("no tasks: %+v", a)
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{fmtRate(0), "-"}, {fmtRate(999), "999"}, {fmtRate(1500), "1.5k"}, {fmtRate(2_345_678), "2.35M"}, {fmtRate(4.2e9), "4.2G"},
		{fmtRatio(0), "-"}, {fmtRatio(0.0071), "0.0071x"}, {fmtRatio(0.5), "0.50x"}, {fmtRatio(2.345), "2.35x"}, {fmtRatio(117.4), "117x"},
		{fmtDuration(0), "0"}, {fmtDuration(341), "341ns"}, {fmtDuration(2640), "2.64µs"}, {fmtDuration(48_300_000), "48.3ms"}, {fmtDuration(4_012_000_000), "4.01s"},
		{fmtBytes(17), "17"}, {fmtBytes(1126), "1.1k"}, {fmtBytes(3 << 20), "3.0M"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// sampleReport is a report as Run fills it.
func sampleReport() *Report {
	h := NewHistogram()
	for v := range int64(1000) {
		h.Record(100_000 + v*100)
	}
	l := h.Summary()
	rep := &Report{
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Elapsed: 3 * time.Second,
		Machine:  Machine{GoVersion: "go1.26", OS: "linux", Arch: "amd64", CPUs: 2, GOMAXPROCS: 2},
		Settings: Settings{Transport: "memory", Broker: "memory://", N: 1000, LatencyN: 1000, Concurrency: 2, PrefetchMultiplier: 4, Producers: 1, Batch: 100, Clients: 1, Serializer: "json", Pool: "goroutine"},
		Results: []Result{
			{Scenario: "drain", Tasks: 1000, Elapsed: time.Millisecond, Rate: 1e6, Alloc: Alloc{AllocsPerTask: 0.5, BytesPerTask: 40},
				Ceiling: &Figure{What: "buffered chan consume", Rate: 2e7},
				Celery:  &Figure{What: "celery", Skipped: "Python Celery is not importable"}},
			{Scenario: "latency", Tasks: 1000, Elapsed: time.Second, Rate: 1000, Latency: &l, CDF: h.CDF(),
				Ceiling: &Figure{What: "buffered chan round trip", Rate: 2e6, Latency: &Latency{Count: 1000, P50: 300}, CDF: []CDFPoint{{300, 0.5}, {400, 1}}}},
			{Scenario: "canvas", Skipped: ErrChordsUnsupported.Error()},
		},
	}
	rep.finish()
	return rep
}

func TestWriteTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"celerity bench: memory (memory://)",
		"n=1000, latency n=1000, concurrency 2, prefetch x4",
		"drain   1000", "1M", "20M", "0.05x", // rate, ceiling, ratio
		"p50", "p99.9", "celerity latency", "buffered chan round trip",
		"drain, celery: Python Celery is not importable",
		"canvas: the result backend cannot run chords",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteJSONRoundTrips(t *testing.T) {
	t.Parallel()
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("decode: %v\n%s", err, b.String())
	}
	if len(back.Results) != 3 || back.Results[0].CeilingRatio != 0.05 || back.Results[1].Latency.P50 != rep.Results[1].Latency.P50 ||
		back.Results[2].Skipped == "" || back.Settings.N != 1000 {
		t.Fatalf("decoded report differs: %+v", back)
	}
	for _, key := range []string{`"p999_ns"`, `"allocs_per_task"`, `"ceiling_ratio"`, `"gc_pause_max_ns"`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestWriteHTMLIsSelfContained(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	rep := sampleReport()
	rep.Settings.Broker = `<script>alert(1)</script>`
	if err := rep.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "<svg", "tasks/s (log scale)", "round-trip time", "<polyline", "drain"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", " src=", "href=\"http"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q (must be self-contained and escaped)", bad)
		}
	}
	// An empty report still renders.
	b.Reset()
	if err := (&Report{}).WriteHTML(&b); err != nil || !strings.Contains(b.String(), "No throughput scenario ran") {
		t.Fatalf("empty report: %v", err)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"amqp://guest:guest@127.0.0.1:5672/v", "amqp://guest:xxxxx@127.0.0.1:5672/v"},
		{"redis://:secret@host:6379/1", "redis://:xxxxx@host:6379/1"},
		{"redis://127.0.0.1:6379/14", "redis://127.0.0.1:6379/14"},
		{"memory://", "memory://"},
		{"", ""},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
