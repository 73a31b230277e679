package codec

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseISOTime(t *testing.T) {
	t.Parallel()
	utc := func(y, mo, d, h, mi, s, ns int) time.Time {
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC)
	}
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-24T02:14:43.676182+00:00", utc(2026, 11, 24, 2, 14, 43, 676182000)}, // Celery eta
		{"2024-01-02T03:04:05Z", utc(2024, 1, 2, 3, 4, 5, 0)},                         // kombu JSON datetime
		{"2026-11-24T02:14:49.489844", utc(2026, 11, 24, 2, 14, 49, 489844000)},       // date_done, naive = UTC
		{"2030-01-03T00:00:00+00:00", utc(2030, 1, 3, 0, 0, 0, 0)},
		{"2030-01-03", utc(2030, 1, 3, 0, 0, 0, 0)},
		{"2030-1-3", utc(2030, 1, 3, 0, 0, 0, 0)},
		{"2030-01-03 10:20", utc(2030, 1, 3, 10, 20, 0, 0)},
		{"2030-01-03T10:20+02:00", utc(2030, 1, 3, 8, 20, 0, 0)},
		{"2030-01-03T01:00:00-05:30", utc(2030, 1, 3, 6, 30, 0, 0)},
		{"2030-01-03T10:20:30.5", utc(2030, 1, 3, 10, 20, 30, 500000000)},
		{"2030-01-03T10:20:30.123456789123", utc(2030, 1, 3, 10, 20, 30, 123456789)},
		{"2024-02-29T23:59:59.999999Z", utc(2024, 2, 29, 23, 59, 59, 999999000)},
		{"2000-02-29", utc(2000, 2, 29, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		got, err := ParseISOTime([]byte(tt.in))
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("ParseISOTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestAppendISOTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		t       time.Time
		iso, dd string
	}{
		{time.Date(2026, 11, 24, 2, 14, 43, 676182999, time.UTC), "2026-11-24T02:14:43.676182+00:00", "2026-11-24T02:14:43.676182"},
		{time.Date(2030, 1, 3, 0, 0, 0, 0, time.UTC), "2030-01-03T00:00:00+00:00", "2030-01-03T00:00:00"},
		{time.Date(2030, 1, 3, 0, 0, 0, 999, time.UTC), "2030-01-03T00:00:00+00:00", "2030-01-03T00:00:00"},
		{time.Date(2030, 1, 3, 5, 0, 0, 1000, time.FixedZone("x", 2*3600)), "2030-01-03T03:00:00.000001+00:00", "2030-01-03T03:00:00.000001"},
	}
	for _, tt := range tests {
		if got := string(AppendISOTime(nil, tt.t)); got != tt.iso {
			t.Errorf("AppendISOTime(%v) = %s, want %s", tt.t, got, tt.iso)
		}
		if got := string(AppendDateDone(nil, tt.t)); got != tt.dd {
			t.Errorf("AppendDateDone(%v) = %s, want %s", tt.t, got, tt.dd)
		}
		back, err := ParseISOTime(AppendISOTime(nil, tt.t))
		if err != nil || !back.Equal(tt.t.Truncate(time.Microsecond)) {
			t.Errorf("round trip %v: %v %v", tt.t, back, err)
		}
	}
}

func TestJSONBody(t *testing.T) {
	t.Parallel()
	b := AppendJSONBody(nil, nil, nil, nil)
	if string(b) != `[[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]` {
		t.Errorf("default body %s", b)
	}
	b = AppendJSONBody(b[:0], []byte(`[1, "a"]`), []byte(`{"k": [1]}`), []byte(`{}`))
	args, kwargs, embed, err := SplitJSONBody(b)
	if err != nil || string(args) != `[1, "a"]` || string(kwargs) != `{"k": [1]}` || string(embed) != `{}` {
		t.Errorf("split %s: %s %s %s %v", b, args, kwargs, embed, err)
	}
	args, kwargs, embed, err = SplitJSONBody([]byte(" [ [ ] ,{ \"a\":null} , null ] \n"))
	if err != nil || string(args) != "[ ]" || string(kwargs) != `{ "a":null}` || embed != nil {
		t.Errorf("split with spaces: %q %q %q %v", args, kwargs, embed, err)
	}
	// Python's json writes NaN and Infinity; they are valid argument values.
	if _, _, _, err := SplitJSONBody([]byte(`[[NaN, Infinity, -Infinity, 1e5, -0.5E-3], {}, {}]`)); err != nil {
		t.Errorf("python numbers: %v", err)
	}
}

func TestBodyJSONPlainIsBody(t *testing.T) {
	t.Parallel()
	m := Message{Body: []byte("[[], {}, {}]")}
	b, err := m.BodyJSON(0)
	if err != nil || &b[0] != &m.Body[0] {
		t.Errorf("BodyJSON copied or failed: %v", err)
	}
	m = Message{}
	if b, err := m.BodyJSON(0); err != nil || b == nil || len(b) != 0 {
		t.Errorf("empty body: %q %v", b, err)
	}
}

func TestStates(t *testing.T) {
	t.Parallel()
	for s := StatePending; s < StateCustom; s++ {
		got, ok := ParseState([]byte(s.String()))
		if !ok || got != s {
			t.Errorf("ParseState(%s) = %v, %v", s, got, ok)
		}
		if s.Ready() != (s == StateSuccess || s == StateFailure || s == StateRevoked) {
			t.Errorf("%v.Ready() = %v", s, s.Ready())
		}
	}
	if s, ok := ParseState([]byte("PROGRESS")); ok || s != StateCustom {
		t.Errorf("custom state: %v %v", s, ok)
	}
	if State(200).String() != "State(200)" || StateCustom.String() != "CUSTOM" {
		t.Error("String of odd states")
	}
}

func TestResultRoundTrip(t *testing.T) {
	t.Parallel()
	want := Result{
		State: StateCustom, CustomState: []byte("PROGRESS"), Result: []byte(`{"done": 3, "of": 10}`),
		Traceback: []byte("line \"1\"\n\u00e9"), Children: AppendChildren(nil, []ResultRef{
			{ID: []byte("c1")},
			{ID: []byte("g1"), IsGroup: true, Children: []ResultRef{{ID: []byte("m1"), Parent: &ResultRef{ID: []byte("p")}}}},
		}),
		DateDone: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), TaskID: []byte("t1"), GroupID: []byte("g"),
		ParentID: []byte("p"), Extended: true, Name: []byte("n"), Args: []byte("[1]"), Kwargs: []byte("{}"),
		Worker: []byte("w@h"), Retries: 4, Queue: []byte("q"),
	}
	out := AppendResultJSON(nil, &want)
	wantJSON := `{"status": "PROGRESS", "result": {"done": 3, "of": 10}, "traceback": "line \"1\"\n\u00e9", ` +
		`"children": [[["c1", null], null], [["g1", null], [[["m1", [["p", null], null]], null]]]], ` +
		`"date_done": "2026-01-02T03:04:05.000006", "group_id": "g", "parent_id": "p", "name": "n", "args": [1], ` +
		`"kwargs": {}, "worker": "w@h", "retries": 4, "queue": "q", "task_id": "t1"}`
	if string(out) != wantJSON {
		t.Errorf("AppendResultJSON:\n got %s\nwant %s", out, wantJSON)
	}
	var got Result
	if err := DecodeResultJSON(out, &got); err != nil {
		t.Fatal(err)
	}
	got.scratch = nil
	if string(AppendResultJSON(nil, &got)) != wantJSON || string(got.Traceback) != string(want.Traceback) {
		t.Errorf("decoded %+v", got)
	}
	refs, err := DecodeChildren(got.Children)
	if err != nil || len(refs) != 2 || !refs[1].IsGroup || string(refs[1].Children[0].Parent.ID) != "p" {
		t.Errorf("children %+v %v", refs, err)
	}
	// Minimal record: empty fields are written as Celery writes them.
	min := AppendResultJSON(nil, &Result{State: StateSuccess, TaskID: []byte("x")})
	if string(min) != `{"status": "SUCCESS", "result": null, "traceback": null, "children": [], "date_done": null, "task_id": "x"}` {
		t.Errorf("minimal: %s", min)
	}
	// Celery's record of a message for no registered task: every extended
	// field null, retries too (Retries -1).
	unknown := `{"status": "FAILURE", "result": null, "traceback": null, "children": [], "date_done": null, ` +
		`"name": null, "args": null, "kwargs": null, "worker": null, "retries": null, "queue": null, "task_id": "u"}`
	var u Result
	if err := DecodeResultJSON([]byte(unknown), &u); err != nil || u.Retries != -1 || !u.Extended {
		t.Fatalf("decoded %+v, %v: want Extended and Retries -1", u, err)
	}
	if out := AppendResultJSON(nil, &u); string(out) != unknown {
		t.Errorf("null extended fields:\n got %s\nwant %s", out, unknown)
	}
}

func TestDecodeException(t *testing.T) {
	t.Parallel()
	e, ok := DecodeException([]byte(`{"exc_type": "Time\u004cimitExceeded", "exc_message": [1.5], "exc_module": "billiard.exceptions"}`))
	if !ok || string(e.Type) != "TimeLimitExceeded" || string(e.Message) != "[1.5]" || string(e.Module) != "billiard.exceptions" {
		t.Errorf("%+v %v", e, ok)
	}
	for _, in := range []string{`5`, `{"pid": 1}`, `{"exc_type": null}`, `{"exc_type": 1}`, `{"exc_type": "X"`, ``} {
		if _, ok := DecodeException([]byte(in)); ok {
			t.Errorf("DecodeException(%s) ok", in)
		}
	}
	if out := AppendExceptionJSON(nil, "SoftTimeLimitExceeded", "billiard.exceptions"); string(out) !=
		`{"exc_type": "SoftTimeLimitExceeded", "exc_message": [], "exc_module": "billiard.exceptions"}` {
		t.Errorf("no args: %s", out)
	}
}

func TestSignatureNew(t *testing.T) {
	t.Parallel()
	idx, prio := 1, 5
	cd := 2.5
	s := Signature{Task: "t.add", Args: json.RawMessage(`[2]`), Options: SignatureOptions{
		TaskID: "id", GroupIndex: &idx, Priority: &prio, Countdown: &cd, Queue: "q",
		Link:  []Signature{{Task: "t.cb", Immutable: true}},
		Extra: []Option{{Key: "custom", Value: json.RawMessage(`[1]`)}, {Key: "nothing"}},
	}}
	want := `{"task": "t.add", "args": [2], "kwargs": {}, "options": {"task_id": "id", "group_index": 1, ` +
		`"link": [{"task": "t.cb", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": true}], ` +
		`"queue": "q", "priority": 5, "countdown": 2.5, "custom": [1], "nothing": null}, "subtask_type": null, "immutable": false}`
	out, err := s.MarshalJSON()
	if err != nil || string(out) != want {
		t.Fatalf("MarshalJSON:\n got %s\nwant %s", out, want)
	}
	var back Signature
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if again := back.AppendJSON(nil); string(again) != want {
		t.Errorf("re-encoded:\n got %s\nwant %s", again, want)
	}
	// Null and oddly typed known options survive verbatim, in order.
	in := `{"task": "t", "args": [], "kwargs": {}, "options": {"root_id": null, "priority": 1.5, "link": {"task": "x", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}, "group_id": "g"}, "subtask_type": null, "immutable": false}`
	var odd Signature
	if err := odd.UnmarshalJSON([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if len(odd.Options.Link) != 1 || odd.Options.Priority != nil || odd.Options.GroupID != "g" {
		t.Errorf("odd options: %+v", odd.Options)
	}
	wantOdd := strings.Replace(in, `"link": {`, `"link": [{`, 1)
	wantOdd = strings.Replace(wantOdd, `"immutable": false}, "group_id"`, `"immutable": false}], "group_id"`, 1)
	if got := odd.AppendJSON(nil); string(got) != wantOdd {
		t.Errorf("odd re-encoded:\n got %s\nwant %s", got, wantOdd)
	}
	// A typed field set after decoding replaces a null kept in Extra.
	odd.Options.RootID = "r"
	if got := string(odd.AppendJSON(nil)); !strings.Contains(got, `"root_id": "r"`) || strings.Contains(got, `"root_id": null`) {
		t.Errorf("override: %s", got)
	}
}

func TestEmbedRoundTrip(t *testing.T) {
	t.Parallel()
	e := Embed{Chain: []Signature{}, Chord: &Signature{Task: "t.body"}}
	out := AppendEmbed(nil, &e)
	want := `{"callbacks": null, "errbacks": null, "chain": [], "chord": {"task": "t.body", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}}`
	if string(out) != want {
		t.Fatalf("AppendEmbed = %s", out)
	}
	back, err := DecodeEmbed(out)
	if err != nil || back.Chain == nil || len(back.Chain) != 0 || back.Callbacks != nil || back.Chord.Task != "t.body" {
		t.Errorf("DecodeEmbed: %+v %v", back, err)
	}
	if e, err := DecodeEmbed(nil); err != nil || e.Chain != nil {
		t.Errorf("empty embed: %+v %v", e, err)
	}
	if e, err := DecodeEmbed([]byte(`{"callbacks": {"task": "one"}}`)); err != nil || len(e.Callbacks) != 1 {
		t.Errorf("single callback: %+v %v", e, err)
	}
}
