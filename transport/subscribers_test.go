package transport

import (
	"context"
	"errors"
	"strconv"
	"testing"
)

func TestSubscribersKeepTheLatestRecordsAndClose(t *testing.T) {
	t.Parallel()
	var s Subscribers
	ctx := context.Background()
	sub, err := s.Subscribe("t1")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := s.Subscribe("t2")
	for i := range 20 { // more than the subscriber buffers: the oldest go
		s.Publish("t1", []byte(strconv.Itoa(i)))
	}
	var last string
	for range 8 {
		rec, err := sub.Next(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = string(rec)
	}
	if last != "19" {
		t.Fatalf("last record %q, want the latest (19)", last)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	s.Publish("t1", []byte("after close")) // no subscriber left: no effect
	s.Close()
	if _, err := other.Next(ctx, nil); !errors.Is(err, ErrSubscriptionClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := s.Subscribe("t3"); !errors.Is(err, ErrSubscriptionClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}
