package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/amqp"
	"github.com/celerity-go/celerity/transport/redis"
)

// amqpTransport opens RabbitMQ brokers with the rpc:// result backend (or
// a Redis one); its raw ceiling publishes and consumes with amqp091-go.
type amqpTransport struct {
	brokerURL, backendURL string
	o                     TransportOptions
	log                   *slog.Logger
}

func newAMQPTransport(ctx context.Context, brokerURL, backendURL string, o TransportOptions) (*amqpTransport, error) {
	switch scheme(backendURL) {
	case "", "rpc", "redis", "rediss", "redis+socket", "socket", "unix":
	default:
		return nil, fmt.Errorf("%w: a RabbitMQ broker takes rpc:// or a Redis result backend, not %s", ErrUnsupportedTransport, Redact(backendURL))
	}
	t := &amqpTransport{brokerURL: brokerURL, backendURL: backendURL, o: o, log: slog.New(slog.DiscardHandler)}
	// Fail early, with the reason, when the server is not there.
	b, err := amqp.NewBroker(ctx, brokerURL, amqp.WithLogger(t.log))
	if err != nil {
		return nil, fmt.Errorf("bench: amqp broker %s: %w", Redact(brokerURL), err)
	}
	b.Close()
	return t, nil
}

func (t *amqpTransport) Name() string { return "amqp" }

func (t *amqpTransport) Open(ctx context.Context, _ string) (transport.Broker, transport.Backend, error) {
	b, err := amqp.NewBroker(ctx, t.brokerURL)
	if err != nil {
		return nil, nil, err
	}
	var be transport.Backend
	if s := scheme(t.backendURL); s == "" || s == "rpc" {
		be, err = amqp.NewRPCBackend(ctx, b, amqp.WithResultExpires(t.o.ResultExpires))
	} else {
		be, err = redis.NewBackend(ctx, t.backendURL, redis.WithResultExpires(t.o.ResultExpires))
	}
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, be, nil
}

func (t *amqpTransport) Ceiling() Ceiling {
	return &amqpCeiling{url: rawAMQPURL(t.brokerURL), queue: t.o.Prefix + ".raw"}
}

func (t *amqpTransport) CeleryURLs() (string, string, error) {
	be := t.backendURL
	if be == "" {
		be = "rpc://"
	}
	return t.brokerURL, be, nil
}

func (t *amqpTransport) Cleanup(ctx context.Context, queues []string) error {
	b, err := amqp.NewBroker(ctx, t.brokerURL, amqp.WithLogger(t.log))
	if err != nil {
		return err
	}
	defer b.Close()
	var errs []error
	for _, q := range append(queues, t.o.Prefix+".raw", t.o.Prefix+".raw.reply") {
		if _, err := b.DeleteQueue(ctx, q); err != nil {
			errs = append(errs, err)
		}
		// Celery declares an exchange named after each task queue.
		if err := b.DeleteExchange(ctx, q); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *amqpTransport) Close() error { return nil }

// rawAMQPURL turns kombu's pyamqp:// into amqp091's amqp://.
func rawAMQPURL(u string) string {
	if rest, ok := strings.CutPrefix(u, "pyamqp://"); ok {
		return "amqp://" + rest
	}
	return u
}

// amqpCeiling publishes and consumes with amqp091-go on a durable queue of
// its own, as our transport does but without Celery's headers, routing
// and worker: persistent messages to the default exchange with publisher
// confirms (Publish waits for them, as ours does), consumed with a
// prefetch window and multiple acks.
type amqpCeiling struct {
	url, queue string
}

func (*amqpCeiling) Name() string { return "amqp091 publish/consume" }

// channel dials a connection with one channel in confirm mode and
// declares (and empties) q.
func (ac *amqpCeiling) channel(q string) (*amqp091.Connection, *amqp091.Channel, error) {
	conn, err := amqp091.DialConfig(ac.url, amqp091.Config{Heartbeat: 10 * time.Second, Dial: amqp091.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err == nil {
		_, err = ch.QueueDeclare(q, true, false, false, false, nil)
	}
	if err == nil {
		_, err = ch.QueuePurge(q, false)
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

// publish sends n payloads to q, waiting for the confirmations of each
// batch (1 = every message on its own).
func publish(ctx context.Context, ch *amqp091.Channel, q string, n, batch int, payload []byte) error {
	msg := amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Persistent, Body: payload}
	pending := make([]*amqp091.DeferredConfirmation, 0, max(batch, 1))
	for i := 0; i < n; {
		pending = pending[:0]
		for ; i < n && len(pending) < max(batch, 1); i++ {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, false, false, msg)
			if err != nil {
				return err
			}
			pending = append(pending, dc)
		}
		for _, dc := range pending {
			ok, err := dc.WaitContext(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("amqp: publish nacked")
			}
		}
	}
	return nil
}

// consume receives n messages from q with prefetch window, acknowledging
// them half a window at a time (multiple=true).
func consume(ctx context.Context, ch *amqp091.Channel, q string, n, window int) error {
	window = max(window, 1)
	if err := ch.Qos(window, 0, false); err != nil {
		return err
	}
	tag := "bench-raw-" + q
	deliveries, err := ch.ConsumeWithContext(ctx, q, tag, false, false, false, false, nil)
	if err != nil {
		return err
	}
	defer ch.Cancel(tag, false)
	every := max(window/2, 1)
	for got := 0; got < n; {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("amqp: consumer closed")
			}
			got++
			if got%every == 0 || got == n {
				if err := d.Ack(true); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (ac *amqpCeiling) Enqueue(ctx context.Context, n, batch int, payload []byte) (time.Duration, error) {
	conn, ch, err := ac.channel(ac.queue)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	err = publish(ctx, ch, ac.queue, n, batch, payload)
	d := time.Since(start)
	_, perr := ch.QueuePurge(ac.queue, false)
	return d, errors.Join(err, perr)
}

func (ac *amqpCeiling) Drain(ctx context.Context, n, window int, payload []byte) (time.Duration, error) {
	conn, ch, err := ac.channel(ac.queue)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := publish(ctx, ch, ac.queue, n, 1000, payload); err != nil {
		return 0, err
	}
	start := time.Now()
	err = consume(ctx, ch, ac.queue, n, window)
	return time.Since(start), err
}

func (ac *amqpCeiling) Handoff(ctx context.Context, n, window int, payload []byte) (time.Duration, error) {
	pconn, pch, err := ac.channel(ac.queue)
	if err != nil {
		return 0, err
	}
	defer pconn.Close()
	cconn, cch, err := ac.channel(ac.queue)
	if err != nil {
		return 0, err
	}
	defer cconn.Close()
	var wg sync.WaitGroup
	var pubErr error
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		pubErr = publish(ctx, pch, ac.queue, n, max(window, 1), payload)
	}()
	err = consume(ctx, cch, ac.queue, n, window)
	d := time.Since(start)
	wg.Wait()
	return d, errors.Join(pubErr, err)
}

func (ac *amqpCeiling) RoundTrip(ctx context.Context, n int, payload []byte, h *Histogram) error {
	req, rep := ac.queue, ac.queue+".reply"
	sconn, sch, err := ac.channel(req)
	if err != nil {
		return err
	}
	defer sconn.Close()
	cconn, cch, err := ac.channel(rep)
	if err != nil {
		return err
	}
	defer cconn.Close()
	// The responder: consume requests, publish each back as a reply.
	if err := sch.Qos(1, 0, false); err != nil {
		return err
	}
	requests, err := sch.ConsumeWithContext(ctx, req, "bench-raw-server", false, false, false, false, nil)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() {
		for d := range requests {
			err := sch.PublishWithContext(ctx, "", rep, false, false, amqp091.Publishing{Body: d.Body})
			if err == nil {
				err = d.Ack(false)
			}
			if err != nil {
				served <- err
				return
			}
		}
		served <- nil
	}()
	replies, err := cch.ConsumeWithContext(ctx, rep, "bench-raw-client", true, false, false, false, nil)
	if err != nil {
		return err
	}
	msg := amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Persistent, Body: payload}
	for i := range n {
		start := time.Now()
		dc, err := cch.PublishWithDeferredConfirmWithContext(ctx, "", req, false, false, msg)
		if err != nil {
			return err
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			return errors.Join(errors.New("amqp: request not confirmed"), err)
		}
		select {
		case _, ok := <-replies:
			if !ok {
				return fmt.Errorf("round trip %d: reply consumer closed", i)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		h.RecordDuration(time.Since(start))
	}
	sch.Cancel("bench-raw-server", false)
	select {
	case err := <-served:
		return err
	case <-time.After(5 * time.Second):
		return nil
	}
}
