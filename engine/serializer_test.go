package engine

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestSerializersAndCompressionRoundTrip(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{AcceptContent: []string{"json", "msgpack", "yaml"}})
	echo := Register1(app, "t.echo", func(_ context.Context, v map[string]any) (map[string]any, error) { return v, nil })
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 10*time.Second)
	in := map[string]any{"s": "héllo", "n": 3.5, "l": []any{1.0, "x", nil}}
	for _, opts := range [][]Option{
		{Serializer("msgpack")}, {Serializer("yaml")}, {Compression("zlib")}, {Compression("bzip2")},
		{Serializer("msgpack"), Compression("zstd")},
	} {
		res, err := echo.ApplyAsync(ctx, in, opts...)
		if err != nil {
			t.Fatal(err)
		}
		got, err := res.Get(ctx)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(in) {
			t.Fatalf("%v: got %v, %v", opts, got, err)
		}
	}
}
