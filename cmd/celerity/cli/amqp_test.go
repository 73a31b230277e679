package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/internal/interoptest"
)

// TestWorkerAndCallOverRabbitMQ runs `celerity worker` and `celerity call
// --wait` against the real RabbitMQ with results over rpc://, on a queue of
// its own that it deletes afterwards.
func TestWorkerAndCallOverRabbitMQ(t *testing.T) {
	t.Parallel()
	url := brokertest.AMQPURL(t)
	queue := strings.TrimSuffix(brokertest.Prefix(t), "-")
	t.Cleanup(func() {
		conn, err := amqp091.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			ch.QueueDelete(queue, false, false, false)
			ch.ExchangeDelete(queue, false, false)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wout, werr interoptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"worker", "--broker", url, "--backend", "rpc://", "-c", "2", "-Q", queue},
			Options{Stdout: &wout, Stderr: &werr})
	}()
	var out, errb bytes.Buffer
	callCtx, callCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer callCancel()
	code := Run(callCtx, []string{"call", "--broker", url, "--backend", "rpc://", "--queue", queue,
		"--args", `[7, "seven"]`, "--wait", "20s", "celerity.echo"}, Options{Stdout: &out, Stderr: &errb})
	if code != 0 {
		t.Fatalf("call exit %d: %s\nworker: %s", code, errb.String(), werr.String())
	}
	if !strings.Contains(out.String(), `"state":"SUCCESS"`) || !strings.Contains(out.String(), `"result":[7,"seven"]`) {
		t.Fatalf("call output %q", out.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("worker exit %d: %s", code, werr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop on cancel")
	}
}
