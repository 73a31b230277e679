// Package transporttest is the conformance suite every celerity transport
// passes: memory, Redis and AMQP run the same tests, so the engine can
// count on the same behaviour from each.
//
// A transport's test calls RunBroker and RunBackend with a Harness that
// makes fresh, isolated brokers and backends (own key prefix, DB or vhost).
// Cases for optional methods (transport.Poller, transport.OnePublisher,
// the chord counting and group records the engine's chords and groups
// use) run when the transport implements them and skip otherwise.
package transporttest
