//go:build !race

package serializer

import "testing"

func TestAllocsJSONAppendArgs(t *testing.T) {
	var args any = []any{1, 2} // boxed once, as a caller holding args does
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(1000, func() { dst, _ = JSON.Append(dst[:0], args) }); n != 0 {
		t.Errorf("JSON.Append([]any{1, 2}): %v allocs, want 0", n)
	}
	if string(dst) != "[1,2]" {
		t.Errorf("got %s", dst)
	}
	var body any = []any{[]any{2, "x"}, map[string]any{}, map[string]any{"chain": nil}}
	if n := testing.AllocsPerRun(1000, func() { dst, _ = JSON.Append(dst[:0], body) }); n != 0 {
		t.Errorf("JSON.Append(body): %v allocs, want 0", n)
	}
}

func TestAllocsLookups(t *testing.T) {
	msgpackAccept, err := NewAccept("json", "msgpack", "application/x-custom")
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"application/json", "application/x-msgpack", "application/data", "", "application/x-custom"} {
		b := []byte(ct)
		if n := testing.AllocsPerRun(1000, func() {
			if msgpackAccept.Check(b) != nil {
				t.Fatal("refused")
			}
		}); n != 0 {
			t.Errorf("Accept.Check(%q): %v allocs, want 0", ct, n)
		}
		if n := testing.AllocsPerRun(1000, func() { ByContentType(b) }); n != 0 {
			t.Errorf("ByContentType(%q): %v allocs, want 0", ct, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { ByName("msgpack") }); n != 0 {
		t.Errorf("ByName: %v allocs, want 0", n)
	}
}
