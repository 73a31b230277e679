package transporttest

import (
	"context"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

func record(id string, state codec.State, result string) transport.ResultRecord {
	r := codec.Result{State: state, Result: []byte(result), TaskID: []byte(id)}
	if state.Ready() {
		r.DateDone = time.Date(2026, 11, 24, 2, 14, 49, 489844000, time.UTC)
	}
	return transport.ResultRecord{TaskID: []byte(id), Data: codec.AppendResultJSON(nil, &r)}
}

func decodeState(t *testing.T, rec []byte) codec.State {
	t.Helper()
	var r codec.Result
	if err := codec.DecodeResultJSON(rec, &r); err != nil {
		t.Fatalf("stored record %q does not decode: %v", rec, err)
	}
	return r.State
}

// RunBackend runs the result backend conformance tests, with the chord
// and group cases (chord.go) on a backend that counts chords and saves
// groups.
func RunBackend(t *testing.T, h Harness) {
	if h.NewBackend == nil {
		t.Fatal("transporttest: Harness.NewBackend is nil")
	}
	t.Run("MissingIsPending", func(t *testing.T) {
		b := h.NewBackend(t)
		_, found, err := b.GetResult(context.Background(), "nope-"+t.Name(), nil)
		if err != nil || found {
			t.Fatalf("found=%v err=%v for a missing id", found, err)
		}
	})
	t.Run("StoreGetForget", func(t *testing.T) {
		b := h.NewBackend(t)
		ctx := context.Background()
		rec := record("sgf-1", codec.StateSuccess, "42")
		if err := b.StoreResults(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, found, err := b.GetResult(ctx, "sgf-1", nil)
		if err != nil || !found || string(got) != string(rec.Data) {
			t.Fatalf("GetResult = %q %v %v, want %q", got, found, err, rec.Data)
		}
		if err := b.ForgetResult(ctx, "sgf-1"); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := b.GetResult(ctx, "sgf-1", nil); found {
			t.Fatal("record still there after ForgetResult")
		}
	})
	t.Run("SuccessIsNeverReplaced", func(t *testing.T) {
		b := h.NewBackend(t)
		ctx := context.Background()
		if err := b.StoreResults(ctx, record("snr-1", codec.StateSuccess, "1")); err != nil {
			t.Fatal(err)
		}
		if err := b.StoreResults(ctx, record("snr-1", codec.StateFailure, `{"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}`)); err != nil {
			t.Fatal(err)
		}
		got, _, err := b.GetResult(ctx, "snr-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := decodeState(t, got); s != codec.StateSuccess {
			t.Fatalf("state %v after a later FAILURE write, want SUCCESS kept", s)
		}
	})
	t.Run("SubscribeSeesLaterRecords", func(t *testing.T) {
		b := h.NewBackend(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sub, err := b.Subscribe(ctx, "sub-1")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		go func() {
			time.Sleep(20 * time.Millisecond)
			b.StoreResults(context.Background(), record("sub-1", codec.StateStarted, `{"pid": 1, "hostname": "x"}`))
			b.StoreResults(context.Background(), record("sub-1", codec.StateSuccess, "7"))
		}()
		var last codec.State
		for last != codec.StateSuccess {
			rec, err := sub.Next(ctx, nil)
			if err != nil {
				t.Fatalf("Next: %v (last state %v)", err, last)
			}
			last = decodeState(t, rec)
		}
	})
	t.Run("SubscribeTimesOut", func(t *testing.T) {
		b := h.NewBackend(t)
		sub, err := b.Subscribe(context.Background(), "never-1")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := sub.Next(ctx, nil); err == nil {
			t.Fatal("Next returned a record that was never stored")
		}
	})
	runChords(t, h)
}
