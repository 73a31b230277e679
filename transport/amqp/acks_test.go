package amqp

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type frame struct {
	tag      uint64
	multiple bool
}

func (f frame) String() string {
	if f.multiple {
		return fmt.Sprintf("ack<=%d", f.tag)
	}
	return fmt.Sprintf("ack%d", f.tag)
}

// step is one action on an ackTracker: settle tags (negative = rejected),
// or flush (force, or after a wait).
type step struct {
	settle []int
	flush  bool
	force  bool
	after  time.Duration
	want   []frame // frames the flush sends
}

func TestAckTrackerFrames(t *testing.T) {
	t.Parallel()
	multi := func(tag uint64) frame { return frame{tag, true} }
	one := func(tag uint64) frame { return frame{tag, false} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order: one multiple ack", []step{
			{settle: []int{1, 2, 3, 4}},
			{flush: true, want: []frame{multi(4)}},
		}},
		{"out of order completions coalesce", []step{
			{settle: []int{3, 1, 4, 2}},
			{flush: true, want: []frame{multi(4)}},
		}},
		{"never past an unfinished tag", []step{
			{settle: []int{1, 2, 4, 5}},
			{flush: true, want: []frame{multi(2)}},
			{settle: []int{3}},
			{flush: true, want: []frame{multi(5)}},
		}},
		{"tags above a long gap go one by one after the wait", []step{
			{settle: []int{2, 3}},
			{flush: true, want: nil},
			{flush: true, after: time.Second, want: []frame{one(2), one(3)}},
			{settle: []int{1}},
			{flush: true, want: []frame{multi(1)}},
			{settle: []int{4}},
			{flush: true, want: []frame{multi(4)}},
		}},
		{"force sends everything", []step{
			{settle: []int{2, 5}},
			{flush: true, force: true, want: []frame{one(2), one(5)}},
		}},
		{"rejected tags need no ack but close gaps", []step{
			{settle: []int{1, -2, 3}},
			{flush: true, want: []frame{multi(3)}},
			{settle: []int{-4, -5}},
			{flush: true, want: nil},
			{settle: []int{6}},
			{flush: true, want: []frame{multi(6)}},
		}},
		{"a rejected last tag: the multiple ack stops at the last acked", []step{
			{settle: []int{1, 2, -3}},
			{flush: true, want: []frame{multi(2)}},
		}},
		{"duplicates are acked once", []step{
			{settle: []int{1, 1, 2}},
			{flush: true, want: []frame{multi(2)}},
			{settle: []int{2, 4, 4}},
			{flush: true, force: true, want: []frame{one(4)}},
			{settle: []int{4}},
			{flush: true, force: true, want: nil},
		}},
		{"pressure sends early", []step{
			{settle: []int{2, 3, 4, 5}},
			{flush: true, want: []frame{one(2), one(3), one(4), one(5)}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tr ackTracker
			now := time.Unix(1000, 0)
			for i, st := range tc.steps {
				for _, tag := range st.settle {
					if tag < 0 {
						tr.settle(uint64(-tag), false)
					} else {
						tr.settle(uint64(tag), true)
					}
				}
				if !st.flush {
					continue
				}
				now = now.Add(st.after)
				var got []frame
				tr.flush(now, st.force, 100*time.Millisecond, 4, func(tag uint64, multiple bool) error {
					got = append(got, frame{tag, multiple})
					return nil
				})
				if !slices.Equal(got, st.want) {
					t.Fatalf("step %d: frames %v, want %v", i, got, st.want)
				}
			}
		})
	}
}

// TestAckTrackerNeverAcksUnfinished plays random completion orders
// against a model of RabbitMQ's unacknowledged set: every frame must name
// an outstanding tag, a multiple ack must not cover an unfinished tag,
// and after a forced flush every finished tag is settled.
func TestAckTrackerNeverAcksUnfinished(t *testing.T) {
	t.Parallel()
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var tr ackTracker
		n := 1 + rng.IntN(300)
		outstanding := map[uint64]bool{} // at the broker
		finished := map[uint64]bool{}    // by the worker
		for tag := uint64(1); tag <= uint64(n); tag++ {
			outstanding[tag] = true
		}
		now := time.Unix(0, 0)
		send := func(tag uint64, multiple bool) error {
			if !outstanding[tag] {
				t.Fatalf("seed %d: frame for tag %d, which is not outstanding", seed, tag)
			}
			if !multiple {
				delete(outstanding, tag)
				return nil
			}
			for o := range outstanding {
				if o <= tag {
					if !finished[o] {
						t.Fatalf("seed %d: multiple ack <=%d covers unfinished tag %d", seed, tag, o)
					}
					delete(outstanding, o)
				}
			}
			return nil
		}
		order := rng.Perm(n)
		for _, i := range order {
			tag := uint64(i + 1)
			finished[tag] = true
			if rng.IntN(10) == 0 { // rejected: the frame goes at once
				delete(outstanding, tag)
				tr.settle(tag, false)
			} else {
				tr.settle(tag, true)
			}
			if rng.IntN(4) == 0 {
				now = now.Add(time.Duration(rng.IntN(50)) * time.Millisecond)
				tr.flush(now, false, 100*time.Millisecond, 1+rng.IntN(16), send)
			}
		}
		tr.flush(now, true, 0, 1, send)
		if len(outstanding) != 0 {
			t.Fatalf("seed %d: %d tags never acknowledged", seed, len(outstanding))
		}
		if tr.floor != uint64(n) || len(tr.above) != 0 {
			t.Fatalf("seed %d: floor %d above %v after settling 1..%d", seed, tr.floor, tr.above, n)
		}
	}
}
