package cli

import (
	"context"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// A memory result backend opened for the CLI lets records expire after
// result_expires.
func TestMemoryBackendHonoursResultExpires(t *testing.T) {
	ctx := context.Background()
	broker := memory.NewBroker()
	defer broker.Close()
	for _, url := range []string{"", "memory://"} {
		be, err := openBackend(ctx, url, broker, 20*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := codec.AppendResultJSON(nil, &codec.Result{State: codec.StateSuccess, Result: []byte("1"), TaskID: []byte("t1")})
		if err := be.StoreResults(ctx, transport.ResultRecord{TaskID: []byte("t1"), Data: rec}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, found, err := be.GetResult(ctx, "t1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("backend %q: the record has not expired after 10s, with result_expires 20ms", url)
			}
			time.Sleep(5 * time.Millisecond)
		}
		be.Close()
	}
}
