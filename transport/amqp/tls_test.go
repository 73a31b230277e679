package amqp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/transporttest"
)

// tlsURL returns an amqps:// URL of the tests' vhost that reaches RabbitMQ
// through a TLS-terminating proxy with a certificate of its own.
func tlsURL(t *testing.T) (string, *brokertest.TLSProxy) {
	t.Helper()
	u, p := brokertest.TLSURL(t, testURL(t), "amqps", "5672")
	return u.String(), p
}

// The conformance suite over amqps://, its certificate trusted with
// WithTLS: a broker and an rpc:// backend behave over TLS as in plain text.
func TestConformanceOverTLS(t *testing.T) {
	raw, p := tlsURL(t)
	trust := WithTLS(&tls.Config{RootCAs: p.Roots})
	h := harness()
	h.NewBroker = func(t *testing.T) transport.Broker {
		return newTestBrokerURL(t, raw, WithMaxPriority(10), WithETAThreshold(0), trust)
	}
	h.NewBackend = func(t *testing.T) transport.Backend {
		be, err := NewRPCBackend(t.Context(), newTestBrokerURL(t, raw, trust))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		return be
	}
	t.Run("broker", func(t *testing.T) { transporttest.RunBroker(t, h) })
	t.Run("backend", func(t *testing.T) { transporttest.RunBackend(t, h) })
}

// An amqps:// broker whose certificate is not trusted is refused with the
// verification error, within the dial, not retried until the deadline.
func TestTLSUntrustedCertificateIsRefused(t *testing.T) {
	raw, _ := tlsURL(t)
	start := time.Now()
	_, err := NewBroker(ctxT(t, 10*time.Second), raw, WithLogger(testLogger(t)))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("NewBroker with an untrusted certificate: %v, want x509.UnknownAuthorityError", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("refused after %v", el)
	}
}
