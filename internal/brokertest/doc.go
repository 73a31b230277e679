// Package brokertest finds the real brokers and the Python Celery install
// that integration and interop tests run against.
//
// Tests call RedisURL, AMQPURL or Celery. When the service is missing the
// test is skipped with a clear message, unless CELERITY_REQUIRE_BROKERS=1
// (CI sets it), in which case the test fails: in CI a missing broker is a
// broken machine, not a reason to pass.
package brokertest
