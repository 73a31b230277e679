package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/transporttest"
)

// The tests run in a vhost of their own, created with rabbitmqctl when it
// is available (and CELERITY_TEST_AMQP_URL is not set), deleted at the
// end; otherwise in the URL's vhost with queue names unique to each test.
var (
	vhost = brokertest.Vhost{Prefix: "celerity-amqp-test-"}

	adminOnce sync.Once
	admin     *Broker // for cleanups
	adminErr  error
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := m.Run()
	if admin != nil {
		admin.Close()
	}
	vhost.Delete()
	os.Exit(code)
}

// testURL returns the AMQP URL of the tests' vhost (skipping or failing
// as brokertest does when RabbitMQ is absent).
func testURL(t testing.TB) string {
	t.Helper()
	return vhost.URL(t)
}

// adminBroker is a broker shared by the tests for setup and cleanup.
func adminBroker(t testing.TB) *Broker {
	t.Helper()
	u := testURL(t)
	adminOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, adminErr = NewBroker(ctx, u, WithConnectionName("celerity-test-admin"))
	})
	if adminErr != nil {
		t.Fatal(adminErr)
	}
	return admin
}

// testLogger logs through t until t ends (goroutines that outlive the
// test log nowhere).
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newTestBroker connects a broker to the tests' vhost (or to rawURL when
// given), closed at cleanup.
func newTestBroker(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	return newTestBrokerURL(t, testURL(t), opts...)
}

func newTestBrokerURL(t testing.TB, rawURL string, opts ...Option) *Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]Option{WithLogger(testLogger(t))}, opts...)
	b, err := NewBroker(ctx, rawURL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testQueue returns a queue name unique to t, whose queue and exchange
// are deleted at cleanup.
func testQueue(t testing.TB, name string) string {
	t.Helper()
	q := brokertest.Prefix(t) + name
	a := adminBroker(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.DeleteQueue(ctx, q)
		a.DeleteExchange(ctx, q)
	})
	return q
}

// newTask returns a complete task message for queue q.
func newTask(q, id string) *codec.Message { return transporttest.NewMessage(q, id, 0) }
