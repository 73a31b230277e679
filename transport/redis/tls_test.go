package redis_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/redis"
	"github.com/celerity-go/celerity/transport/transporttest"
)

// tlsURL returns a rediss:// URL of the test server's database that
// reaches it through a TLS-terminating proxy with a certificate of its
// own, with query (kombu's ssl_* parameters) added.
func tlsURL(t *testing.T, query url.Values) string {
	t.Helper()
	u, p := brokertest.TLSURL(t, testURL(t), "rediss", "6379")
	if query.Has("ssl_ca_certs") {
		query.Set("ssl_ca_certs", p.CAFile)
	}
	u.RawQuery = query.Encode()
	return u.String()
}

// The conformance suite over rediss://, the proxy's certificate trusted
// through ssl_ca_certs as kombu takes it: broker and backend behave over
// TLS as in plain text.
func TestConformanceOverTLS(t *testing.T) {
	raw := tlsURL(t, url.Values{"ssl_cert_reqs": {"required"}, "ssl_ca_certs": {"(the proxy's)"}})
	h := harness()
	h.NewBroker = func(t *testing.T) transport.Broker {
		b, _ := newBrokerURL(t, raw)
		return b
	}
	h.NewBackend = func(t *testing.T) transport.Backend {
		b, _ := newBackendURL(t, raw)
		return b
	}
	t.Run("broker", func(t *testing.T) { transporttest.RunBroker(t, h) })
	t.Run("backend", func(t *testing.T) { transporttest.RunBackend(t, h) })
}

// A rediss:// server whose certificate is not trusted is refused with the
// verification error; ssl_cert_reqs=none accepts it, as kombu does.
func TestTLSCertificateChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := redis.NewBroker(ctx, tlsURL(t, url.Values{}))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("NewBroker with an untrusted certificate: %v, want x509.UnknownAuthorityError", err)
	}
	b, err := redis.NewBroker(ctx, tlsURL(t, url.Values{"ssl_cert_reqs": {"none"}}), redis.WithGlobalKeyPrefix(brokertest.Prefix(t)))
	if err != nil {
		t.Fatalf("ssl_cert_reqs=none: %v", err)
	}
	b.Close()
}
