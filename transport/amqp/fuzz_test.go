package amqp

import (
	"errors"
	"testing"
	"time"
)

// FuzzNormalizeURL: any string yields a URL amqp091-go accepts or
// ErrBadURL, never a panic.
func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{"amqp://guest:guest@localhost:5672//", "pyamqp://h/vh?heartbeat=30",
		"amqps://u:p@h:5671/v", "amqp://h:99999/", "amqp://[::1]:5672/%2f", "redis://h/0", "", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := normalizeURL(raw)
		if err != nil && !errors.Is(err, ErrBadURL) {
			t.Fatalf("%q: error %v is not ErrBadURL", raw, err)
		}
		if err == nil {
			if again, err := normalizeURL(out); err != nil || again != out {
				t.Fatalf("%q -> %q -> %q, %v: not stable", raw, out, again, err)
			}
		}
	})
}

// FuzzAckTracker plays the completion order the input describes against
// a model of RabbitMQ's unacknowledged set: no frame names a tag that is
// not outstanding, no multiple ack covers an unfinished tag, and a forced
// flush settles everything finished.
func FuzzAckTracker(f *testing.F) {
	f.Add([]byte{3, 1, 2, 0, 5, 4})
	f.Add([]byte{0x81, 2, 0xff, 7, 7, 1})
	f.Fuzz(func(t *testing.T, order []byte) {
		var tr ackTracker
		outstanding := map[uint64]bool{}
		finished := map[uint64]bool{}
		for tag := uint64(1); tag <= 128; tag++ {
			outstanding[tag] = true
		}
		send := func(tag uint64, multiple bool) error {
			if !outstanding[tag] {
				t.Fatalf("frame for tag %d, which is not outstanding", tag)
			}
			for o := range outstanding {
				if o == tag || (multiple && o < tag) {
					if !finished[o] {
						t.Fatalf("ack (multiple=%v) of %d covers unfinished %d", multiple, tag, o)
					}
					delete(outstanding, o)
				}
			}
			return nil
		}
		now := time.Unix(0, 0)
		for _, b := range order {
			tag := uint64(b&0x7f) + 1
			if b == 0xff { // a flush, time passing
				now = now.Add(50 * time.Millisecond)
				tr.flush(now, false, 100*time.Millisecond, 8, send)
				continue
			}
			if finished[tag] {
				tr.settle(tag, true) // a duplicate ack
				continue
			}
			finished[tag] = true
			if b&0x80 != 0 { // rejected: the frame went at once
				delete(outstanding, tag)
				tr.settle(tag, false)
			} else {
				tr.settle(tag, true)
			}
		}
		tr.flush(now, true, 0, 1, send)
		for tag := range finished {
			if outstanding[tag] {
				t.Fatalf("finished tag %d never acknowledged", tag)
			}
		}
	})
}
