// Package transport is the home of celerity's brokers and result backends.
//
// This package declares the seam: the few methods the engine needs from a
// broker (Broker, Consumer) and a result backend (Backend, Subscription).
// They live here rather than in engine because Broker.Consume returns a
// Consumer: Go interface satisfaction needs the identical return type, so
// the declaration must sit in a leaf that both the engine and the
// transports import (the engine imports transport/memory for its default).
// Each sub-package returns concrete types that satisfy these interfaces:
//
//   - memory: in-process broker and backend, the embedded default.
//   - redis: kombu-compatible Redis broker and Celery's Redis result backend.
//   - amqp: RabbitMQ broker with Celery's topology and the rpc:// backend.
//   - transporttest: the conformance suite every implementation passes.
package transport
