package beat

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// testLocker is the behaviour every Locker must have. expire makes a lease
// taken with the TTL shortTTL expire (advancing a fake clock, or waiting).
func testLocker(t *testing.T, l Locker, shortTTL time.Duration, expire func()) {
	t.Helper()
	ctx := context.Background()
	must := func(held bool, err error) bool {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return held
	}
	if !must(l.Acquire(ctx, "a", time.Minute)) {
		t.Fatal("a could not take a free lease")
	}
	if must(l.Acquire(ctx, "b", time.Minute)) {
		t.Fatal("b took a's lease")
	}
	if !must(l.Acquire(ctx, "a", time.Minute)) {
		t.Fatal("a could not extend its lease")
	}

	tick := time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC) // before 1970, with nanoseconds
	r1 := Record{Tick: tick, LastRunAt: tick.Add(time.Millisecond), TotalRunCount: 41}
	r2 := Record{Tick: tick.Add(1), LastRunAt: tick.Add(2 * time.Millisecond), TotalRunCount: 42}
	for _, step := range []struct {
		token, name string
		rec         Record
		want        error
	}{
		{"b", "e", r1, ErrLeaseLost},
		{"a", "e", r1, nil},
		{"a", "e", r1, ErrTickClaimed}, // the same tick again
		{"a", "e", Record{Tick: tick.Add(-1), LastRunAt: tick}, ErrTickClaimed}, // an earlier one
		{"a", "e", r2, nil},           // one nanosecond later
		{"a", "other entry", r1, nil}, // entries are independent
	} {
		err := l.Claim(ctx, step.token, step.name, step.rec)
		if !errors.Is(err, step.want) || (step.want == nil) != (err == nil) {
			t.Fatalf("Claim(%s, %s, tick %v): %v, want %v", step.token, step.name, step.rec.Tick, err, step.want)
		}
	}
	recs, err := l.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !sameRecord(recs["e"], r2) || !sameRecord(recs["other entry"], r1) {
		t.Fatalf("Load: %+v", recs)
	}

	if err := l.Release(ctx, "b"); err != nil { // not b's: no effect
		t.Fatal(err)
	}
	if must(l.Acquire(ctx, "b", time.Minute)) {
		t.Fatal("b's release freed a's lease")
	}
	if err := l.Release(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := l.Claim(ctx, "a", "e", Record{Tick: tick.Add(time.Hour), LastRunAt: tick.Add(time.Hour)}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("claim after release: %v", err)
	}
	if !must(l.Acquire(ctx, "b", shortTTL)) {
		t.Fatal("b could not take the released lease")
	}
	expire()
	if !must(l.Acquire(ctx, "a", time.Minute)) {
		t.Fatal("a could not take b's expired lease")
	}
	if err := l.Claim(ctx, "b", "e", Record{Tick: tick.Add(time.Hour), LastRunAt: tick.Add(time.Hour)}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("claim with an expired lease: %v", err)
	}
	if recs, err := l.Load(ctx); err != nil || !sameRecord(recs["e"], r2) {
		t.Fatalf("records changed by refused claims: %+v %v", recs, err)
	}
}

func sameRecord(a, b Record) bool {
	return a.Tick.Equal(b.Tick) && a.LastRunAt.Equal(b.LastRunAt) && a.TotalRunCount == b.TotalRunCount
}

func TestMemoryLocker(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	l := NewMemoryLocker()
	l.now = func() time.Time { return now }
	testLocker(t, l, time.Second, func() { now = now.Add(time.Second) })
}

func TestRecordTimesOrderAsStrings(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	random := func() time.Time {
		return time.Unix(lo+r.Int64N(hi-lo), r.Int64N(1e9))
	}
	for range 10000 {
		a, b := random(), random()
		if r.IntN(4) == 0 {
			b = a.Add(time.Duration(r.IntN(3) - 1)) // neighbours
		}
		ea, err := appendTime(nil, a)
		if err != nil {
			t.Fatal(err)
		}
		eb, _ := appendTime(nil, b)
		if len(ea) != tickWidth || strings.Compare(string(ea), string(eb)) != a.Compare(b) {
			t.Fatalf("%v -> %s, %v -> %s", a, ea, b, eb)
		}
	}
}

func TestRecordRoundTripAndErrors(t *testing.T) {
	t.Parallel()
	rec := Record{Tick: time.Date(2024, 5, 10, 12, 0, 0, 5, time.UTC), LastRunAt: time.Date(2024, 5, 10, 12, 0, 0, 800, time.UTC), TotalRunCount: 12}
	b, err := appendRecord(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	if want := "0101715342400000000005 0101715342400000000800 12"; string(b) != want {
		t.Fatalf("encoded %q, want %q", b, want)
	}
	var got Record
	if err := decodeRecord(string(b), &got); err != nil || !sameRecord(got, rec) {
		t.Fatalf("decoded %+v %v", got, err)
	}
	for _, bad := range []string{
		"", "0101715342400000000005", "0101715342400000000005 0101715342400000000800",
		"0101715342400000000005 0101715342400000000800 ", "0101715342400000000005 0101715342400000000800 -1",
		"0101715342400000000005 0101715342400000000800 99999999999", "01017153424000000000x5 0101715342400000000800 1",
		"0101715342400000000005_0101715342400000000800 1", "+101715342400000000005 0101715342400000000800 1",
	} {
		if err := decodeRecord(bad, &got); !errors.Is(err, ErrState) {
			t.Errorf("decodeRecord(%q): %v, want ErrState", bad, err)
		}
	}
	for _, r := range []Record{
		{Tick: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Tick: rec.Tick, LastRunAt: rec.LastRunAt, TotalRunCount: -1},
	} {
		if _, err := appendRecord(nil, r); !errors.Is(err, ErrState) {
			t.Errorf("appendRecord(%+v): %v, want ErrState", r, err)
		}
	}
}

// FuzzDecodeRecord: any stored value decodes to an error or to a record
// that encodes back to a value decoding to the same record.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		"0101715342400000000005 0101715342400000000800 12",
		"0037864403200000000000 0353402300799999999999 0",
		"0101715342400000000005 0101715342400000000800 0012",
		"garbage", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r Record
		if err := decodeRecord(s, &r); err != nil {
			return
		}
		b, err := appendRecord(nil, r)
		if err != nil {
			t.Fatalf("%q decoded to %+v, which does not encode: %v", s, r, err)
		}
		var r2 Record
		if err := decodeRecord(string(b), &r2); err != nil || !sameRecord(r, r2) {
			t.Fatalf("%q -> %+v -> %q -> %+v %v", s, r, b, r2, err)
		}
	})
}
