package codec_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/celerity-go/celerity/codec"
)

// A producer builds a task message and writes the kombu Redis envelope a
// Python worker reads from its queue list.
func ExampleAppendRedisEnvelope() {
	m := codec.AcquireMessage()
	defer codec.ReleaseMessage(m)
	m.Task = m.OwnString("proj.tasks.add")
	m.ID = m.OwnString("00000000-0000-4000-8000-000000000001") // or m.NewID()
	m.DeliveryTag = m.OwnString("00000000-0000-4000-8000-0000000000ff")
	m.RoutingKey = m.OwnString("celery")
	m.TimeLimit = codec.TimeLimit{Hard: 60, HasHard: true}
	m.Body = codec.AppendJSONBody(nil, []byte("[2, 3]"), nil, nil)

	env := codec.AppendRedisEnvelope(nil, m) // LPUSH celery <env>
	var back codec.Message
	if err := codec.DecodeRedisEnvelope(env, &back); err != nil {
		panic(err)
	}
	args, kwargs, _, _ := codec.SplitJSONBody(back.Body)
	fmt.Printf("%s %s args=%s kwargs=%s hard=%v\n", back.Task, back.ID, args, kwargs, back.TimeLimit.Hard)
	// Output: proj.tasks.add 00000000-0000-4000-8000-000000000001 args=[2, 3] kwargs={} hard=60
}

// A worker decodes what Python's client pushed; header values are views
// into the envelope, and the body is JSON after BodyJSON.
func ExampleDecodeRedisEnvelope() {
	env := []byte(`{"body": "W1syLCAzXSwge30sIHt9XQ==", "content-encoding": "utf-8", "content-type": "application/json",
		"headers": {"lang": "py", "task": "wapp.add", "id": "ab12", "eta": "2026-11-24T02:14:43.676182+00:00",
		"retries": 0, "timelimit": [null, 50], "root_id": "ab12"},
		"properties": {"delivery_tag": "t1", "body_encoding": "base64", "priority": 0,
		"delivery_info": {"exchange": "", "routing_key": "celery"}}}`)
	m := codec.AcquireMessage()
	defer codec.ReleaseMessage(m)
	if err := codec.DecodeRedisEnvelope(env, m); err != nil {
		panic(err)
	}
	body, _ := m.BodyJSON(1 << 20)
	fmt.Println(string(m.Task), m.ETA.Format(time.RFC3339Nano), m.TimeLimit.HasHard, m.TimeLimit.Soft, string(body))
	// Output: wapp.add 2026-11-24T02:14:43.676182Z false 50 [[2, 3], {}, {}]
}

// Bad input is a typed error that names the field.
func ExampleDecodeError() {
	env := []byte(`{"body": "", "headers": {"task": "t", "id": "i", "retries": "1"}, "properties": {"delivery_tag": "d"}}`)
	var m codec.Message
	err := codec.DecodeRedisEnvelope(env, &m)
	fmt.Println(err)
	// Output: codec: headers.retries: want integer, got string
}

// A worker stores a task's outcome as Celery's backends do.
func ExampleAppendResultJSON() {
	r := codec.Result{
		State:    codec.StateFailure,
		Result:   codec.AppendExceptionJSON(nil, "ValueError", "builtins", "kaboom"),
		DateDone: time.Date(2026, 11, 24, 2, 14, 49, 489844000, time.UTC),
		TaskID:   []byte("ab12"),
	}
	fmt.Println(string(codec.AppendResultJSON(nil, &r)))
	// Output: {"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["kaboom"], "exc_module": "builtins"}, "traceback": null, "children": [], "date_done": "2026-11-24T02:14:49.489844", "task_id": "ab12"}
}

// Signatures (callbacks, chain steps, chord bodies) decode with
// encoding/json and re-encode exactly as Celery writes them.
func ExampleSignature() {
	var s codec.Signature
	in := `{"task": "wapp.mul", "args": [10], "kwargs": {}, "options": {"task_id": "c1", "link_error": []}, "subtask_type": null, "immutable": false}`
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		panic(err)
	}
	fmt.Println(s.Task, string(s.Args), s.Options.TaskID, len(s.Options.LinkError))
	fmt.Println(string(s.AppendJSON(nil)) == in)
	// Output:
	// wapp.mul [10] c1 0
	// true
}

func ExampleParseISOTime() {
	for _, s := range []string{"2026-11-24T02:14:43.676182+00:00", "2024-01-02T03:04:05Z", "2026-11-24T02:14:49.489844"} {
		t, err := codec.ParseISOTime([]byte(s))
		fmt.Println(t, err)
	}
	// Output:
	// 2026-11-24 02:14:43.676182 +0000 UTC <nil>
	// 2024-01-02 03:04:05 +0000 UTC <nil>
	// 2026-11-24 02:14:49.489844 +0000 UTC <nil>
}
