package amqp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Option configures a Broker or an RPCBackend.
type Option func(*config)

// config holds the settings of a Broker (and of the RPCBackend made from
// it). Every field's default is set by defaultConfig.
type config struct {
	maxPriority    int           // x-max-priority of declared task queues; 0 = none
	heartbeat      time.Duration // AMQP heartbeat proposed to the server
	tls            *tls.Config
	log            *slog.Logger
	ackBatch       int           // coalesce at most this many acks into one flush
	ackDelay       time.Duration // longest an ack waits to be coalesced
	etaThreshold   time.Duration // ETAs further away go to the delay queues; <= 0 disables
	backoffMin     time.Duration
	backoffMax     time.Duration
	publishRetries int // attempts after a lost connection, per Publish call
	maxInFlight    int // unconfirmed publishes per Publish call
	resultExpires  time.Duration
	connName       string
	dialTimeout    time.Duration
}

func defaultConfig() config {
	host, _ := os.Hostname()
	return config{
		heartbeat:      10 * time.Second,
		log:            slog.New(slog.DiscardHandler),
		ackBatch:       64,
		ackDelay:       5 * time.Millisecond,
		etaThreshold:   10 * time.Minute,
		backoffMin:     50 * time.Millisecond,
		backoffMax:     5 * time.Second,
		publishRetries: 5,
		maxInFlight:    8192,
		resultExpires:  24 * time.Hour,
		connName:       "celerity " + strconv.Itoa(os.Getpid()) + "@" + host,
		dialTimeout:    10 * time.Second,
	}
}

// WithMaxPriority declares the task queues the broker creates with
// x-max-priority n (Celery's task_queue_max_priority), so that message
// priorities 0-n take effect, higher first. Default: no argument, as
// Celery. Every client and worker of a queue must agree on this value:
// RabbitMQ refuses (PRECONDITION_FAILED) a declaration that differs from
// the queue's.
func WithMaxPriority(n int) Option { return func(c *config) { c.maxPriority = n } }

// WithHeartbeat sets the AMQP heartbeat interval proposed to the server
// (default 10s; Celery's broker_heartbeat). A "heartbeat" URL query
// parameter, in seconds, takes precedence.
func WithHeartbeat(d time.Duration) Option { return func(c *config) { c.heartbeat = d } }

// WithTLS sets the TLS configuration for amqps:// URLs (default: the
// system roots, server name from the URL). It is cloned.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg.Clone() } }

// WithLogger sets where connection losses, reconnects and rejected
// garbage messages are logged (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithAckBatch sets how acknowledgements are coalesced into one
// basic.ack with multiple=true: at most n acks wait (fewer when the
// prefetch window is small) and none waits longer than delay. Defaults:
// 64 and 5ms. n = 1 sends every ack at once.
func WithAckBatch(n int, delay time.Duration) Option {
	return func(c *config) { c.ackBatch, c.ackDelay = max(n, 1), max(delay, 0) }
}

// WithETAThreshold sets how far in the future a task's ETA (or countdown)
// may be for the consumer to hand it to the worker, which holds it
// unacknowledged. Tasks due later are parked in delay queues (see the
// package documentation) so that no delivery stays unacknowledged longer
// than RabbitMQ's consumer_timeout (30 minutes by default). Default 10
// minutes; d <= 0 turns the delay queues off (Celery's behaviour: every
// ETA task is held).
func WithETAThreshold(d time.Duration) Option { return func(c *config) { c.etaThreshold = d } }

// WithReconnectBackoff sets the exponential backoff between reconnection
// attempts (defaults 50ms doubling up to 5s).
func WithReconnectBackoff(lo, hi time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = max(lo, time.Millisecond), max(hi, lo) }
}

// WithPublishRetries sets how many times one Publish call reconnects and
// re-sends the messages whose confirmation a connection loss swallowed
// (default 5, as a bound on the backoff above). Re-sending means a message
// may reach the queue twice: delivery is at least once.
func WithPublishRetries(n int) Option { return func(c *config) { c.publishRetries = max(n, 0) } }

// WithMaxInFlight bounds the messages one Publish call has awaiting their
// confirmation (default 8192): a call with more sends them in chunks of
// that size, each pipelined, then its confirmations collected. It also
// sizes the buffer of returned (unroutable) messages.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = max(n, 1) } }

// WithResultExpires sets the rpc:// reply queue's x-expires (Celery's
// result_expires, default 1 day): RabbitMQ deletes the queue when no
// client has used it that long.
func WithResultExpires(d time.Duration) Option { return func(c *config) { c.resultExpires = d } }

// WithConnectionName sets the connection_name client property shown by
// rabbitmqctl list_connections (default "celerity <pid>@<host>").
func WithConnectionName(name string) Option { return func(c *config) { c.connName = name } }

// WithDialTimeout bounds TCP connect plus the TLS and AMQP handshakes
// (default 10s).
func WithDialTimeout(d time.Duration) Option { return func(c *config) { c.dialTimeout = d } }

// normalizeURL checks a Celery broker URL and returns it in the form
// amqp091-go parses: "pyamqp://" and "amqp://" are plain AMQP,
// "amqps://" (or "pyamqps://") is TLS. The vhost is the path as kombu
// reads it: "amqp://h//" and "amqp://h/" are vhost "/", "amqp://h/v" is "v".
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	switch u.Scheme {
	case "amqp", "pyamqp":
		u.Scheme = "amqp"
	case "amqps", "pyamqps":
		u.Scheme = "amqps"
	default:
		return "", fmt.Errorf("%w: scheme %q (want amqp://, amqps:// or pyamqp://)", ErrBadURL, u.Scheme)
	}
	out := u.String()
	if _, err := amqp091.ParseURI(out); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	return out, nil
}

// Dial opens one AMQP connection to a Celery broker URL as the transport
// does (the URL schemes of normalizeURL, heartbeat, TLS, the dial timeout
// bounding connect and handshakes, connection name "<name> <role>"), for
// other clients of the same server such as the remote-control bus.
func Dial(ctx context.Context, rawURL, role string, opts ...Option) (*amqp091.Connection, error) {
	norm, err := normalizeURL(rawURL)
	if err != nil {
		return nil, err
	}
	c := defaultConfig()
	for _, o := range opts {
		o(&c)
	}
	return c.dial(ctx, norm, role)
}

// dial opens one AMQP connection, bounded by ctx and the dial timeout.
func (c *config) dial(ctx context.Context, rawURL, role string) (*amqp091.Connection, error) {
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName(c.connName + " " + role)
	cfg := amqp091.Config{
		Heartbeat:  c.heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
			defer cancel()
			var d net.Dialer
			conn, err := d.DialContext(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			// A deadline for the TLS and AMQP handshakes; amqp091-go clears
			// it once the connection is open.
			deadline, _ := dctx.Deadline()
			if err := conn.SetDeadline(deadline); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	if c.tls != nil {
		cfg.TLSClientConfig = c.tls.Clone()
	}
	conn, err := amqp091.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnavailable, redact(rawURL), err)
	}
	return conn, nil
}

// redact hides the password of a URL for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// backoff returns the wait before reconnection attempt n (0-based).
func (c *config) backoff(n int) time.Duration {
	d := c.backoffMin
	for range n {
		d *= 2
		if d >= c.backoffMax {
			return c.backoffMax
		}
	}
	return d
}

// sleepCtx waits d or until ctx or stop is done; it reports whether the
// full wait elapsed.
func sleepCtx(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}
