package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/celerity-go/celerity/transport"
)

// ErrUnsupportedTransport is returned by OpenTransport for a URL scheme it
// does not know.
var ErrUnsupportedTransport = errors.New("bench: unsupported transport")

// ErrNoCeiling is returned by a Ceiling method the transport cannot
// measure.
var ErrNoCeiling = errors.New("bench: no raw ceiling for this scenario")

// Transport is what the harness needs from a transport: fresh brokers and
// backends for each scenario, the raw ceiling to compare with, and the
// URLs Python Celery uses to reach the same broker. OpenTransport returns
// the transports of this repository; a program can bring its own.
// Implementations must be safe for concurrent use.
type Transport interface {
	// Name is "memory", "redis", "amqp", ...
	Name() string
	// Open returns a broker and a result backend (nil = results are not
	// stored) for the named scenario ("" when the harness only probes the
	// transport or purges a queue). The caller closes both.
	Open(ctx context.Context, scenario string) (transport.Broker, transport.Backend, error)
	// Ceiling returns the raw ceiling of the transport, nil if none.
	Ceiling() Ceiling
	// CeleryURLs returns the broker and result backend URLs a Python
	// Celery process uses to reach the same broker, or why it cannot.
	CeleryURLs() (broker, backend string, err error)
	// Cleanup deletes what the run left on the broker under the given
	// queue names (queues, their messages); it is called once at the end.
	Cleanup(ctx context.Context, queues []string) error
	// Close releases what the transport holds.
	Close() error
}

// Ceiling measures the transport itself, without celerity's protocol,
// routing or worker: what a hand-written program could reach. payload is
// an encoded task message of the size our messages have. Each method
// works on a queue or channel of its own and leaves it empty.
type Ceiling interface {
	// Name says what is measured, e.g. "buffered chan".
	Name() string
	// Enqueue publishes n payloads, batch at a time (1 = one call each),
	// and returns how long that took.
	Enqueue(ctx context.Context, n, batch int, payload []byte) (time.Duration, error)
	// Drain loads n payloads (untimed) and returns how long consuming and
	// acknowledging them took, with at most window unacknowledged.
	Drain(ctx context.Context, n, window int, payload []byte) (time.Duration, error)
	// Handoff runs a producer and a consumer together over n payloads with
	// at most window unacknowledged, and returns the time until the last
	// is consumed.
	Handoff(ctx context.Context, n, window int, payload []byte) (time.Duration, error)
	// RoundTrip does n request/reply exchanges one after the other through
	// the transport, recording each one's duration in h.
	RoundTrip(ctx context.Context, n int, payload []byte, h *Histogram) error
}

// TransportOptions are what OpenTransport needs besides the URLs.
type TransportOptions struct {
	// Prefix names the queues and keys of this run, e.g.
	// "celerity-bench-1a2b3c4d".
	Prefix string
	// ResultExpires bounds how long results stay on a real backend
	// (default 10 minutes: the harness does not need them afterwards).
	ResultExpires time.Duration
}

// OpenTransport returns the transport for brokerURL: "" or memory:// (the
// default, no server needed), redis:// (also rediss://, redis+socket://)
// or amqp:// (also amqps://). backendURL picks the result backend: "" for
// the broker's own kind (Redis results on the same server; RabbitMQ
// rpc://), or redis://... for a Redis backend with a RabbitMQ broker.
func OpenTransport(ctx context.Context, brokerURL, backendURL string, o TransportOptions) (Transport, error) {
	if o.ResultExpires <= 0 {
		o.ResultExpires = 10 * time.Minute
	}
	switch scheme(brokerURL) {
	case "", "memory":
		if backendURL != "" && scheme(backendURL) != "memory" {
			return nil, fmt.Errorf("%w: the memory broker takes the memory backend, not %s", ErrUnsupportedTransport, Redact(backendURL))
		}
		return newMemoryTransport(), nil
	case "redis", "rediss", "redis+socket", "socket", "unix":
		return newRedisTransport(ctx, brokerURL, backendURL, o)
	case "amqp", "amqps", "pyamqp":
		return newAMQPTransport(ctx, brokerURL, backendURL, o)
	default:
		return nil, fmt.Errorf("%w: broker %s (known: memory://, redis://, amqp://)", ErrUnsupportedTransport, Redact(brokerURL))
	}
}

func scheme(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		return strings.ToLower(u[:i])
	}
	return strings.ToLower(u)
}

// Redact returns u with its password replaced by "xxxxx".
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); !ok {
		return u
	}
	p.User = url.UserPassword(p.User.Username(), "xxxxx")
	return p.String()
}
