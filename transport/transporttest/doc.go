// Package transporttest is the conformance suite every celerity transport
// passes: memory, Redis and AMQP run the same tests, so the engine can
// count on the same behaviour from each.
//
// A transport's test calls RunBroker and RunBackend with a Harness that
// makes fresh, isolated brokers and backends (own key prefix, DB or vhost).
package transporttest
