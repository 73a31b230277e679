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
