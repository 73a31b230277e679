package unsafeconv

import "testing"

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "a", "celery-task-meta-1"} {
		if got := String(Bytes(s)); got != s {
			t.Fatalf("String(Bytes(%q)) = %q", s, got)
		}
	}
	if Bytes("") != nil || String(nil) != "" {
		t.Fatal("empty values must map to nil/\"\"")
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	s := "bench.noop"
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{Bytes(s), true},             // the same memory
		{[]byte("bench.noop"), true}, // other memory, same bytes
		{Bytes(s)[:5], false},        // the same memory, shorter
		{[]byte("bench.noOp"), false},
		{nil, false},
	} {
		if got := Equal(c.b, s); got != c.want {
			t.Errorf("Equal(%q, %q) = %v", c.b, s, got)
		}
	}
	if !Equal(nil, "") || !Equal([]byte{}, "") {
		t.Error("empty values must be equal")
	}
}
