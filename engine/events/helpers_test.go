package events_test

import (
	"encoding/base64"
	stdjson "encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// pythonBody returns the decoded body of an event envelope captured from
// a Python Celery 5.2.6 worker on Redis.
func pythonBody(t testing.TB, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Body string `json:"body"`
	}
	if err := stdjson.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	body, err := base64.StdEncoding.DecodeString(env.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
