package redis

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Defaults, as kombu 5.2 and Celery 5.2 have them (celery-wire.md §3.8, §5.1).
const (
	DefaultVisibilityTimeout  = time.Hour
	DefaultUnackedMutexExpire = 300 * time.Second
	DefaultResultExpires      = 24 * time.Hour
	DefaultRetryTimeout       = 20 * time.Second
	// Sep separates queue names from priority steps and the fields of a
	// binding row: "celery\x06\x163".
	Sep = "\x06\x16"
)

// config is what the URL and the options configure.
type config struct {
	client rueidis.ClientOption
	db     int

	visibilityTimeout   time.Duration
	queueOrder          string // round_robin | sorted | priority
	prioritySteps       []int
	keyPrefix           string // global_keyprefix
	unackedKey          string
	unackedIndexKey     string
	unackedMutexKey     string
	unackedMutexExpire  time.Duration
	unackedRestoreLimit int // 0 = all

	resultExpires time.Duration // 0 = never (SET instead of SETEX)
	resultPrefix  string        // backend-only key prefix (not in Celery 5.2)

	retryTimeout time.Duration
	logger       *slog.Logger
}

func defaultConfig() *config {
	return &config{
		visibilityTimeout:  DefaultVisibilityTimeout,
		queueOrder:         "round_robin",
		prioritySteps:      []int{0, 3, 6, 9},
		unackedKey:         "unacked",
		unackedIndexKey:    "unacked_index",
		unackedMutexKey:    "unacked_mutex",
		unackedMutexExpire: DefaultUnackedMutexExpire,
		resultExpires:      DefaultResultExpires,
		retryTimeout:       DefaultRetryTimeout,
	}
}

// An Option configures a Broker or a Backend beyond its URL. Options are
// applied after the URL's query parameters, so they win.
type Option func(*config) error

// WithTransportOptions applies Celery's broker_transport_options (or
// result_backend_transport_options) by their kombu names:
// visibility_timeout (seconds), queue_order_strategy ("round_robin",
// "sorted", "priority"), priority_steps (list of 0-9 integers),
// global_keyprefix, unacked_key, unacked_index_key, unacked_mutex_key,
// unacked_mutex_expire (seconds), unacked_restore_limit, and for the
// backend result_expires (seconds; null or 0 = never). Options kombu has
// that do not apply here (socket_timeout, max_connections,
// health_check_interval, fanout_prefix, fanout_patterns, sep,
// ack_emulation, retry_on_timeout, socket_keepalive, ...) are accepted
// and ignored; an unknown name is an error.
func WithTransportOptions(opts map[string]any) Option {
	return func(c *config) error {
		keys := make([]string, 0, len(opts))
		for k := range opts {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic error for several bad options
		for _, k := range keys {
			if err := c.set(k, opts[k]); err != nil {
				return err
			}
		}
		return nil
	}
}

// WithVisibilityTimeout sets visibility_timeout: how long a fetched,
// unacknowledged message may stay unrefreshed before any consumer (Go or
// Python) puts it back on its queue. Default 1 hour.
func WithVisibilityTimeout(d time.Duration) Option {
	return func(c *config) error { return c.set("visibility_timeout", d.Seconds()) }
}

// WithQueueOrderStrategy sets queue_order_strategy: "round_robin"
// (default), "sorted" or "priority".
func WithQueueOrderStrategy(s string) Option {
	return func(c *config) error { return c.set("queue_order_strategy", s) }
}

// WithPrioritySteps sets priority_steps, the priority buckets (default
// 0, 3, 6, 9).
func WithPrioritySteps(steps ...int) Option {
	return func(c *config) error {
		v := make([]any, len(steps))
		for i, s := range steps {
			v[i] = s
		}
		return c.set("priority_steps", v)
	}
}

// WithGlobalKeyPrefix sets global_keyprefix: a prefix for every key the
// broker uses (queues, bindings, unacked bookkeeping), as kombu 5.2 does.
func WithGlobalKeyPrefix(p string) Option {
	return func(c *config) error { return c.set("global_keyprefix", p) }
}

// WithResultExpires sets result_expires for the backend: records are
// written with SETEX and this many seconds (rounded down, at least 1).
// Zero means records never expire (SET). Default 1 day.
func WithResultExpires(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: result_expires %v < 0", ErrBadOption, d)
		}
		c.resultExpires = d
		return nil
	}
}

// WithResultKeyPrefix prefixes every key and channel of the result
// backend. Celery 5.2's Redis backend has no such setting, so Python
// clients will not find prefixed records; it exists to isolate Go users
// (and tests) sharing a database.
func WithResultKeyPrefix(p string) Option {
	return func(c *config) error { c.resultPrefix = p; return nil }
}

// WithLogger sets the logger for connection problems and bad messages.
// Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithTLSConfig sets the TLS configuration (a rediss:// URL otherwise gets
// one from its ssl_* query parameters).
func WithTLSConfig(t *tls.Config) Option {
	return func(c *config) error { c.client.TLSConfig = t; return nil }
}

// WithRetryTimeout bounds how long an operation that failed because the
// connection was lost is retried (publish, ack, requeue, result writes)
// before its error is returned. Default 20s.
func WithRetryTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("%w: retry timeout %v < 0", ErrBadOption, d)
		}
		c.retryTimeout = d
		return nil
	}
}

// WithClientOption lets the caller adjust the rueidis client options
// (pool sizes, timeouts, dialer) after the URL has been applied.
func WithClientOption(fn func(*rueidis.ClientOption)) Option {
	return func(c *config) error { fn(&c.client); return nil }
}

// ignoredOptions are kombu/redis-py options that have no meaning here.
var ignoredOptions = map[string]bool{
	"socket_timeout": true, "socket_connect_timeout": true, "socket_keepalive": true,
	"socket_keepalive_options": true, "max_connections": true, "health_check_interval": true,
	"retry_on_timeout": true, "fanout_prefix": true, "fanout_patterns": true,
	"ack_emulation": true, "sep": true, "polling_interval": true, "retry_policy": true,
	"result_chord_ordered": true, "client_name": true,
}

// set applies one transport option by its kombu name. v comes from JSON/YAML
// configuration (float64, string, []any, nil) or from a URL (string).
func (c *config) set(name string, v any) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrBadOption, name, v, why)
	}
	switch name {
	case "visibility_timeout", "unacked_mutex_expire", "result_expires":
		if v == nil && name == "result_expires" {
			c.resultExpires = 0
			return nil
		}
		secs, ok := number(v)
		if !ok || secs < 0 || math.IsInf(secs, 0) || secs > 1e9 {
			return bad("want a non-negative number of seconds")
		}
		d := time.Duration(secs * float64(time.Second))
		switch name {
		case "visibility_timeout":
			if d < 100*time.Millisecond {
				return bad("must be at least 0.1 seconds")
			}
			c.visibilityTimeout = d
		case "unacked_mutex_expire":
			if d < time.Millisecond {
				return bad("must be at least 1 millisecond")
			}
			c.unackedMutexExpire = d
		default:
			c.resultExpires = d
		}
	case "unacked_restore_limit":
		if v == nil {
			c.unackedRestoreLimit = 0
			return nil
		}
		n, ok := number(v)
		if !ok || n < 0 || n != math.Trunc(n) || n > 1e9 {
			return bad("want a non-negative integer")
		}
		c.unackedRestoreLimit = int(n)
	case "queue_order_strategy":
		s, _ := v.(string)
		switch s {
		case "round_robin", "sorted", "priority":
			c.queueOrder = s
		default:
			return bad(`want "round_robin", "sorted" or "priority"`)
		}
	case "priority_steps":
		steps, err := parseSteps(v)
		if err != nil {
			return bad(err.Error())
		}
		c.prioritySteps = steps
	case "global_keyprefix", "unacked_key", "unacked_index_key", "unacked_mutex_key":
		s, ok := v.(string)
		if !ok {
			return bad("want a string")
		}
		switch name {
		case "global_keyprefix":
			c.keyPrefix = s
		case "unacked_key":
			c.unackedKey = s
		case "unacked_index_key":
			c.unackedIndexKey = s
		default:
			c.unackedMutexKey = s
		}
		if s == "" && name != "global_keyprefix" {
			return bad("must not be empty")
		}
	default:
		if ignoredOptions[name] {
			return nil
		}
		return fmt.Errorf("%w: unknown option %q", ErrBadOption, name)
	}
	return nil
}

// number reads a JSON/YAML number or a decimal string.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case float32:
		return float64(x), !math.IsNaN(float64(x))
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// parseSteps reads priority_steps: a list of numbers, or a comma-separated
// string (from a URL). Steps must be distinct, sorted and within 0-9.
func parseSteps(v any) ([]int, error) {
	var raw []any
	switch x := v.(type) {
	case []any:
		raw = x
	case []int:
		for _, n := range x {
			raw = append(raw, n)
		}
	case string:
		x = strings.Trim(strings.TrimSpace(x), "[]")
		for _, f := range strings.Split(x, ",") {
			raw = append(raw, strings.TrimSpace(f))
		}
	default:
		return nil, fmt.Errorf("want a list of integers")
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("want at least one step")
	}
	steps := make([]int, len(raw))
	for i, r := range raw {
		f, ok := number(r)
		if !ok || f != math.Trunc(f) || f < 0 || f > 9 {
			return nil, fmt.Errorf("step %v is not an integer in 0-9", r)
		}
		steps[i] = int(f)
		if i > 0 && steps[i] <= steps[i-1] {
			return nil, fmt.Errorf("steps must be increasing")
		}
	}
	return steps, nil
}
