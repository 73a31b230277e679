package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/redis"
)

// redisTransport opens Redis brokers and backends on one server; its raw
// ceiling runs plain list commands through rueidis on the same client
// settings.
type redisTransport struct {
	brokerURL, backendURL string
	o                     TransportOptions
	probe                 *redis.Broker // its client runs the raw ceiling
}

func newRedisTransport(ctx context.Context, brokerURL, backendURL string, o TransportOptions) (*redisTransport, error) {
	switch scheme(backendURL) {
	case "", "redis", "rediss", "redis+socket", "socket", "unix":
	default:
		return nil, fmt.Errorf("%w: a Redis broker takes a Redis result backend, not %s", ErrUnsupportedTransport, Redact(backendURL))
	}
	probe, err := redis.NewBroker(ctx, brokerURL, redis.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, fmt.Errorf("bench: redis broker %s: %w", Redact(brokerURL), err)
	}
	return &redisTransport{brokerURL: brokerURL, backendURL: backendURL, o: o, probe: probe}, nil
}

func (t *redisTransport) Name() string { return "redis" }

func (t *redisTransport) Open(ctx context.Context, _ string) (transport.Broker, transport.Backend, error) {
	b, err := redis.NewBroker(ctx, t.brokerURL)
	if err != nil {
		return nil, nil, err
	}
	url := t.backendURL
	if url == "" {
		url = t.brokerURL
	}
	be, err := redis.NewBackend(ctx, url, redis.WithResultExpires(t.o.ResultExpires))
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, be, nil
}

func (t *redisTransport) Ceiling() Ceiling {
	return &redisCeiling{c: t.probe.Client(), key: t.o.Prefix + ".raw"}
}

func (t *redisTransport) CeleryURLs() (string, string, error) {
	be := t.backendURL
	if be == "" {
		be = t.brokerURL
	}
	return t.brokerURL, be, nil
}

func (t *redisTransport) Cleanup(ctx context.Context, queues []string) error {
	var errs []error
	c := t.probe.Client()
	for _, q := range queues {
		if _, err := t.probe.PurgeQueue(ctx, q); err != nil {
			errs = append(errs, err)
		}
		// A Python worker declares its queue in kombu's binding table.
		errs = append(errs, c.Do(ctx, c.B().Del().Key("_kombu.binding."+q).Build()).Error())
	}
	k := t.o.Prefix + ".raw"
	errs = append(errs, c.Do(ctx, c.B().Del().Key(k, k+".reply").Build()).Error())
	return errors.Join(errs...)
}

func (t *redisTransport) Close() error { return t.probe.Close() }

// redisCeiling moves payloads through a Redis list with pipelined LPUSH
// and RPOP (RPOP key count: one round trip per batch), the commands a
// hand-written Redis queue uses, without kombu's envelope routing,
// unacked bookkeeping or visibility timeout.
type redisCeiling struct {
	c   rueidis.Client
	key string
}

func (*redisCeiling) Name() string { return "redis LPUSH/RPOP" }

// push LPUSHes n payloads, batch commands per pipeline.
func (rc *redisCeiling) push(ctx context.Context, n, batch int, payload []byte) error {
	c := rc.c
	if batch <= 1 {
		for range n {
			if err := c.Do(ctx, c.B().Lpush().Key(rc.key).Element(rueidis.BinaryString(payload)).Build()).Error(); err != nil {
				return err
			}
		}
		return nil
	}
	cmds := make(rueidis.Commands, 0, batch)
	for i := 0; i < n; i += batch {
		cmds = cmds[:0]
		for range min(batch, n-i) {
			cmds = append(cmds, c.B().Lpush().Key(rc.key).Element(rueidis.BinaryString(payload)).Build())
		}
		for _, r := range c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
	}
	return nil
}

// pop RPOPs n payloads, up to batch per command, waiting with BRPOP when
// the list is empty.
func (rc *redisCeiling) pop(ctx context.Context, n, batch int) error {
	c := rc.c
	got := 0
	for got < n {
		vals, err := c.Do(ctx, c.B().Rpop().Key(rc.key).Count(int64(min(batch, n-got))).Build()).AsStrSlice()
		if rueidis.IsRedisNil(err) || (err == nil && len(vals) == 0) {
			one, err := c.Do(ctx, c.B().Brpop().Key(rc.key).Timeout(1).Build()).AsStrSlice()
			if rueidis.IsRedisNil(err) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				continue
			}
			if err != nil {
				return err
			}
			if len(one) == 2 {
				got++
			}
			continue
		}
		if err != nil {
			return err
		}
		got += len(vals)
	}
	return nil
}

func (rc *redisCeiling) clear(ctx context.Context) error {
	return rc.c.Do(ctx, rc.c.B().Del().Key(rc.key).Build()).Error()
}

func (rc *redisCeiling) Enqueue(ctx context.Context, n, batch int, payload []byte) (time.Duration, error) {
	if err := rc.clear(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	err := rc.push(ctx, n, batch, payload)
	d := time.Since(start)
	return d, errors.Join(err, rc.clear(ctx))
}

func (rc *redisCeiling) Drain(ctx context.Context, n, window int, payload []byte) (time.Duration, error) {
	if err := rc.clear(ctx); err != nil {
		return 0, err
	}
	if err := rc.push(ctx, n, 1000, payload); err != nil {
		return 0, err
	}
	start := time.Now()
	err := rc.pop(ctx, n, max(window, 1))
	return time.Since(start), err
}

func (rc *redisCeiling) Handoff(ctx context.Context, n, window int, payload []byte) (time.Duration, error) {
	if err := rc.clear(ctx); err != nil {
		return 0, err
	}
	batch := max(window, 1)
	var wg sync.WaitGroup
	var pushErr error
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		pushErr = rc.push(ctx, n, batch, payload)
	}()
	popErr := rc.pop(ctx, n, batch)
	d := time.Since(start)
	wg.Wait()
	return d, errors.Join(pushErr, popErr, rc.clear(ctx))
}

func (rc *redisCeiling) RoundTrip(ctx context.Context, n int, payload []byte, h *Histogram) error {
	c := rc.c
	req, rep := rc.key, rc.key+".reply"
	if err := c.Do(ctx, c.B().Del().Key(req, rep).Build()).Error(); err != nil {
		return err
	}
	// The responder needs a connection of its own for its blocking pops
	// (rueidis gives blocking commands dedicated connections).
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() {
		for {
			v, err := c.Do(sctx, c.B().Brpop().Key(req).Timeout(1).Build()).AsStrSlice()
			if rueidis.IsRedisNil(err) && sctx.Err() == nil {
				continue
			}
			if err == nil && len(v) == 2 {
				err = c.Do(sctx, c.B().Lpush().Key(rep).Element(v[1]).Build()).Error()
			}
			if sctx.Err() != nil { // stopped: whatever failed, failed for that
				served <- nil
				return
			}
			if err != nil {
				served <- err
				return
			}
		}
	}()
	body := rueidis.BinaryString(payload)
	for i := range n {
		start := time.Now()
		if err := c.Do(ctx, c.B().Lpush().Key(req).Element(body).Build()).Error(); err != nil {
			return err
		}
		v, err := c.Do(ctx, c.B().Brpop().Key(rep).Timeout(5).Build()).AsStrSlice()
		if err != nil {
			return fmt.Errorf("round trip %s: %w", strconv.Itoa(i), err)
		}
		if len(v) != 2 {
			return fmt.Errorf("round trip %d: no reply", i)
		}
		h.RecordDuration(time.Since(start))
	}
	stop()
	return <-served
}
