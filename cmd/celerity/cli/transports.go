package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/amqp"
	"github.com/celerity-go/celerity/transport/memory"
	"github.com/celerity-go/celerity/transport/redis"
)

const knownBrokers = "memory, redis, rediss, redis+socket, amqp, amqps, pyamqp"

// openBroker resolves a broker URL (Celery's broker_url) to a transport.
func openBroker(ctx context.Context, url string, log *slog.Logger) (transport.Broker, error) {
	switch scheme(url) {
	case "", "memory":
		return memory.NewBroker(), nil
	case "redis", "rediss", "redis+socket", "socket", "unix":
		b, err := redis.NewBroker(ctx, url, redis.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		return b, nil
	case "amqp", "amqps", "pyamqp":
		b, err := amqp.NewBroker(ctx, url, amqp.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("broker %q: unsupported scheme (known: %s)", url, knownBrokers)
	}
}

// openBackend resolves a result backend URL (Celery's result_backend).
// With none given, a memory broker gets a memory backend and any other
// broker none: results are then not stored, as in Celery. rpc:// needs an
// AMQP broker: results come back on its reply queue. Stored results expire
// after expires (result_expires; 0 is engine.DefaultResultExpires).
func openBackend(ctx context.Context, url string, broker transport.Broker, expires time.Duration, log *slog.Logger) (transport.Backend, error) {
	if expires == 0 {
		expires = engine.DefaultResultExpires
	}
	switch scheme(url) {
	case "":
		if _, ok := broker.(*memory.Broker); ok {
			return memory.NewBackend(memory.ResultExpires(expires)), nil
		}
		return nil, nil
	case "rpc":
		b, ok := broker.(*amqp.Broker)
		if !ok {
			return nil, fmt.Errorf("result backend %q needs an AMQP broker", url)
		}
		be, err := amqp.NewRPCBackend(ctx, b, amqp.WithResultExpires(expires), amqp.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("result backend: %w", err)
		}
		return be, nil
	case "memory":
		return memory.NewBackend(memory.ResultExpires(expires)), nil
	case "redis", "rediss", "redis+socket", "socket", "unix":
		b, err := redis.NewBackend(ctx, url, redis.WithResultExpires(expires), redis.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("result backend: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("result backend %q: unsupported scheme (known: memory, redis, rediss, redis+socket, rpc)", url)
	}
}

func scheme(url string) string {
	if i := strings.Index(url, "://"); i >= 0 {
		return url[:i]
	}
	return url
}
