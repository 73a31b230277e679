package engine

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
)

// TestFillMessageOverwritesEveryField: the producer builds a message on a
// pooled one that may still hold an earlier message's fields, writing only
// the fields that change (codec.AcquireMessageToOverwrite). Whatever the
// earlier message held, the result must be the message built on a zero
// one, for every exported field, including fields added to codec.Message
// later.
func TestFillMessageOverwritesEveryField(t *testing.T) {
	app := MustNew(Config{})
	defer app.Close()
	running := &slotState{running: []byte("parent-task-id"), root: "root-task-id", run: 1}
	inHandler := &taskContext{Context: context.Background(), st: running}
	future := time.Now().Add(time.Hour).Truncate(time.Second)

	type send struct {
		name         string
		ctx          context.Context
		args, kwargs []byte
		opts         []Option
	}
	sends := []send{
		{name: "no arguments", ctx: context.Background()},
		{name: "arguments", ctx: context.Background(), args: []byte(`[1, "two"]`), kwargs: []byte(`{"x": 3}`)},
		{name: "from a handler", ctx: inHandler, args: []byte(`[1]`)},
		{name: "every option", ctx: inHandler, args: []byte(`[1, 2]`), kwargs: []byte(`{"y": null}`), opts: []Option{
			ETA(future), ExpiresAt(future.Add(time.Hour)), Queue("q1"), Exchange("ex1"), RoutingKey("rk1"),
			Priority(7), Headers(map[string]any{"h": "v"}), Compression("zlib"), TaskID("fixed-id"),
			IgnoreResult(true), TimeLimit(9 * time.Second), SoftTimeLimit(8 * time.Second), Retries(3),
			Link(Sig("tasks.next")), Shadow("shadow-name"), ParentID("p-id"), RootID("r-id"),
			Group("g-id"), GroupIndex(2),
		}},
		{name: "msgpack", ctx: context.Background(), args: []byte(`[1]`), opts: []Option{Serializer("msgpack")}},
	}
	fill := func(t *testing.T, m *codec.Message, s send) {
		t.Helper()
		if _, err := app.fillMessage(m, s.ctx, "tasks.fill", s.args, s.kwargs, nil, s.opts); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range sends {
		var earlier []func(*testing.T) *codec.Message
		earlier = append(earlier, func(t *testing.T) *codec.Message { return junkMessage(t) })
		for _, prev := range sends {
			earlier = append(earlier, func(t *testing.T) *codec.Message {
				m := new(codec.Message)
				fill(t, m, prev)
				return m
			})
		}
		for i, before := range earlier {
			fresh := new(codec.Message)
			fill(t, fresh, want)
			reused := before(t)
			fill(t, reused, want)
			sameMessage(t, want.name+" after earlier message "+string(rune('0'+i)), fresh, reused)
		}
	}
}

// junkMessage returns a message with every exported field set to a value
// no send produces.
func junkMessage(t *testing.T) *codec.Message {
	m := new(codec.Message)
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		switch x := f.Addr().Interface().(type) {
		case *[]byte:
			*x = []byte("junk " + sf.Name)
		case *time.Time:
			*x = time.Unix(1234567, 0)
		case *int:
			*x = 77
		case *int64:
			*x = 99
		case *uint8:
			*x = 7
		case *uint64:
			*x = 55
		case *bool:
			*x = true
		case *codec.TimeLimit:
			*x = codec.TimeLimit{Hard: 1, Soft: 2, HasHard: true, HasSoft: true}
		default:
			t.Fatalf("junkMessage: no junk for field %s of type %s", sf.Name, sf.Type)
		}
	}
	m.MarkSelfContained()
	return m
}

// sameMessage compares every exported field of two messages built from
// one send. Fields holding the (random) task id compare as "the id".
func sameMessage(t *testing.T, what string, want, got *codec.Message) {
	t.Helper()
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	for i := range wv.NumField() {
		sf := wv.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		w, g := wv.Field(i).Interface(), gv.Field(i).Interface()
		switch w := w.(type) {
		case []byte:
			g := g.([]byte)
			if bytes.Equal(w, want.ID) && len(w) == 36 {
				if !bytes.Equal(g, got.ID) {
					t.Errorf("%s: %s = %q, want the task id %q", what, sf.Name, g, got.ID)
				}
			} else if sf.Name == "Body" && !bytes.Equal(want.ContentType, contentTypeJSON) {
				// msgpack writes the embed map in Go's map order.
				if len(w) != len(g) {
					t.Errorf("%s: Body = %q, want %q", what, g, w)
				}
			} else if !bytes.Equal(w, g) || (w == nil) != (g == nil) {
				t.Errorf("%s: %s = %q, want %q", what, sf.Name, g, w)
			}
		default:
			if sf.Name == "Expiration" { // milliseconds left, read from the clock
				if d := w.(int64) - g.(int64); d < -1000 || d > 1000 {
					t.Errorf("%s: Expiration = %d, want about %d", what, g, w)
				}
			} else if !reflect.DeepEqual(w, g) {
				t.Errorf("%s: %s = %v, want %v", what, sf.Name, g, w)
			}
		}
	}
}
