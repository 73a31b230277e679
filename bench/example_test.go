package bench_test

import (
	"context"
	"fmt"

	"github.com/celerity-go/celerity/bench"
)

// Run two scenarios on the memory transport and read the figures; a
// program would print the whole report with WriteTable, WriteJSON or
// WriteHTML.
func ExampleRun() {
	rep, err := bench.Run(context.Background(), bench.Config{
		N:         2000,
		LatencyN:  200,
		Scenarios: []string{bench.ScenarioThroughput, bench.ScenarioLatency},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rep.Results {
		fmt.Println(r.Scenario, r.Tasks, r.Rate > 0, r.Ceiling != nil && r.CeilingRatio > 0)
	}
	lat := rep.Results[1].Latency
	fmt.Println(lat.P50 <= lat.P99 && lat.P99 <= lat.P999 && lat.P999 <= lat.Max)
	// Output:
	// throughput 2000 true true
	// latency 200 true true
	// true
}

// A histogram of latencies, recorded by one goroutine.
func ExampleHistogram() {
	h := bench.NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		h.Record(v * 1000) // 1µs .. 1ms, in nanoseconds
	}
	s := h.Summary()
	fmt.Println(s.Count, s.Min, s.Max)
	// Quantiles are within 1/128 of a recorded value, never below it.
	fmt.Println(s.P50 >= 500_000 && s.P50 <= 504_000, s.P99 >= 990_000 && s.P99 <= 998_000)
	// Output:
	// 1000 1µs 1ms
	// true true
}
