package control

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
)

// FuzzHandleCommand feeds arbitrary command bodies to a server: whatever
// the method and arguments, it must answer or ignore them, never panic.
func FuzzHandleCommand(f *testing.F) {
	files, _ := filepath.Glob("testdata/py_command_*.json")
	for _, name := range files {
		var e struct {
			Body string `json:"body"`
		}
		if err := json.Unmarshal(readGolden(f, filepath.Base(name)), &e); err != nil {
			f.Fatal(err)
		}
		body, _ := base64.StdEncoding.DecodeString(e.Body)
		f.Add(body)
	}
	for _, s := range []string{
		`{"method": "revoke", "arguments": {"task_id": ["a", 1, null]}, "reply_to": {"routing_key": "x"}}`,
		`{"method": "rate_limit", "arguments": {"task_name": "t", "rate_limit": 5}}`,
		`{"method": "time_limit", "arguments": {"task_name": "t", "soft": -1, "hard": "x"}}`,
		`{"method": "hello", "arguments": {"from_node": "x", "revoked": {"a": [1.5, 2], "b": "z"}}}`,
		`{"method": "pool_grow", "arguments": {"n": -5}, "destination": ["fuzz@host"]}`,
		`{"method": "ping", "pattern": "[", "matcher": "pcre"}`,
		`{"method": "query_task", "arguments": {"ids": {"a": 1}}}`,
		`{"method": "conf", "arguments": {"with_defaults": "true"}}`,
		`{"method": "autoscale", "arguments": {"max": 0, "min": 9}}`,
	} {
		f.Add([]byte(s))
	}
	app := engine.MustNew(engine.Config{Hostname: "fuzz@host"})
	engine.Register0(app, "t", func(context.Context) (int, error) { return 1, nil })
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 1})
	if err != nil {
		f.Fatal(err)
	}
	bus := NewMemoryBus()
	s := NewServer(bus, w, ServerOptions{})
	f.Fuzz(func(t *testing.T, body []byte) {
		s.handle(context.Background(), &Message{Body: body})
	})
}
