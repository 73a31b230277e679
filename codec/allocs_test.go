//go:build !race

package codec

import (
	"testing"
	"time"
)

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(200, f); n != 0 {
		t.Errorf("%s: %v allocs per run, want 0", name, n)
	}
}

func TestAllocsAppendRedisEnvelope(t *testing.T) {
	m := dispatchMessage()
	buf := AppendRedisEnvelope(nil, m)
	assertNoAllocs(t, "AppendRedisEnvelope", func() { buf = AppendRedisEnvelope(buf[:0], m) })
	m.DeliveryTag = nil // the encoder makes a fresh tag on the stack
	assertNoAllocs(t, "AppendRedisEnvelope without tag", func() { buf = AppendRedisEnvelope(buf[:0], m) })
}

func TestAllocsDecodeRedisEnvelope(t *testing.T) {
	srcs := map[string][]byte{"all dispatch headers": AppendRedisEnvelope(nil, dispatchMessage())}
	for _, name := range []string{"plain", "options", "eta", "retry", "chord.1", "unicode", "restored", "zlib"} {
		srcs[name] = goldenFile(t, "redis/"+name+".json")
	}
	for name, src := range srcs {
		m := AcquireMessage()
		if err := DecodeRedisEnvelope(src, m); err != nil {
			t.Fatal(err)
		}
		assertNoAllocs(t, "DecodeRedisEnvelope "+name, func() {
			if err := DecodeRedisEnvelope(src, m); err != nil {
				t.Fatal(err)
			}
		})
		if name == "all dispatch headers" && (len(m.Group) == 0 || len(m.ParentID) == 0 || m.ETA.IsZero() || !m.TimeLimit.HasHard) {
			t.Fatalf("not all headers decoded: %+v", m)
		}
		ReleaseMessage(m)
	}
}

func TestAllocsBody(t *testing.T) {
	m := AcquireMessage()
	src := goldenFile(t, "redis/link.json")
	if err := DecodeRedisEnvelope(src, m); err != nil {
		t.Fatal(err)
	}
	assertNoAllocs(t, "decode + BodyJSON + SplitJSONBody", func() {
		_ = DecodeRedisEnvelope(src, m)
		b, err := m.BodyJSON(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := SplitJSONBody(b); err != nil {
			t.Fatal(err)
		}
	})
	var buf []byte
	assertNoAllocs(t, "AppendJSONBody", func() { buf = AppendJSONBody(buf[:0], []byte("[1]"), nil, nil) })
	assertNoAllocs(t, "NewID", func() { m.NewID(); m.NewDeliveryTag() })
	elems, array := make([][]byte, 0, 4), []byte(`[2, "x", {"a": [1]}]`)
	assertNoAllocs(t, "AppendJSONArrayElems", func() {
		if _, err := AppendJSONArrayElems(elems[:0], array); err != nil {
			t.Fatal(err)
		}
	})
	ReleaseMessage(m)
}

func TestAllocsResultJSON(t *testing.T) {
	r := &Result{State: StateSuccess, Result: []byte("5"), Traceback: []byte("line\n\"x\""), TaskID: []byte("00000000-0000-4000-8000-000000000010"),
		DateDone: time.Now(), GroupID: []byte("g"), ParentID: []byte("p"), Extended: true, Name: []byte("t.add"),
		Args: []byte("[2, 3]"), Kwargs: []byte("{}"), Worker: []byte("w@h"), Queue: []byte("celery")}
	buf := AppendResultJSON(nil, r)
	assertNoAllocs(t, "AppendResultJSON", func() { buf = AppendResultJSON(buf[:0], r) })
	var back Result
	src := goldenFile(t, "results/failure.json")
	_ = DecodeResultJSON(src, &back)
	assertNoAllocs(t, "DecodeResultJSON", func() {
		if err := DecodeResultJSON(src, &back); err != nil {
			t.Fatal(err)
		}
	})
	assertNoAllocs(t, "AppendExceptionJSON", func() { buf = AppendExceptionJSON(buf[:0], "ValueError", "builtins", "kaboom") })
}

func TestAllocsISOTime(t *testing.T) {
	tm := time.Date(2026, 11, 24, 2, 14, 43, 676182000, time.UTC)
	var buf []byte
	assertNoAllocs(t, "AppendISOTime", func() { buf = AppendISOTime(buf[:0], tm) })
	assertNoAllocs(t, "AppendDateDone", func() { buf = AppendDateDone(buf[:0], tm) })
	for _, s := range []string{"2026-11-24T02:14:43.676182+00:00", "2024-01-02T03:04:05Z", "2026-11-24T02:14:49.489844", "2030-01-03T10:20+02:00"} {
		b := []byte(s)
		assertNoAllocs(t, "ParseISOTime "+s, func() {
			if _, err := ParseISOTime(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}
