package memory

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/celerity-go/celerity/codec"
)

// TestRingMatchesASlice drives a ring and a plain slice with the same
// random pushes and pops, across growth and wrap-around, and compares
// what comes out.
func TestRingMatchesASlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var r ring
	var want []*codec.Message
	dst := make([]*codec.Message, 40)
	for step := range 20000 {
		m := new(codec.Message)
		switch op := rng.IntN(4); {
		case op == 0 && len(want) < 500:
			r.pushBack(m)
			want = append(want, m)
		case op == 1 && len(want) < 500:
			r.pushFront(m)
			want = slices.Insert(want, 0, m)
		case op == 2 && len(want) > 0:
			if got := r.popFront(); got != want[0] {
				t.Fatalf("step %d: popFront returned the wrong message", step)
			}
			want = want[1:]
		case op == 3:
			k := r.popFrontInto(dst[:rng.IntN(len(dst)+1)])
			if n := min(len(want), k); k != n || !slices.Equal(dst[:k], want[:k]) {
				t.Fatalf("step %d: popFrontInto moved %d messages, want the first %d of %d", step, k, n, len(want))
			}
			want = want[k:]
		}
		held := 0
		for _, m := range r.buf {
			if m != nil {
				held++
			}
		}
		if r.len() != len(want) || held != len(want) {
			t.Fatalf("step %d: len %d and %d slots in use, want %d (a popped slot must be cleared)", step, r.len(), held, len(want))
		}
	}
}
