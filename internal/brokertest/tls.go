package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TLSProxy is a TLS-terminating proxy in front of a broker on loopback,
// with a certificate of its own for 127.0.0.1: the tests of amqps:// and
// rediss:// URLs reach the shared plain-text servers through it.
type TLSProxy struct {
	// Addr is the proxy's host:port.
	Addr string
	// Roots trusts the proxy's certificate (and nothing else).
	Roots *x509.CertPool
	// CAFile is that certificate in a PEM file, for URL parameters such
	// as rediss://...?ssl_ca_certs=.
	CAFile string
}

// NewTLSProxy starts a proxy that accepts TLS connections and forwards
// their plain text to target (host:port); it stops when t ends.
func NewTLSProxy(t testing.TB, target string) *TLSProxy {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "celerity test proxy"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return // closed
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &TLSProxy{Addr: ln.Addr().String(), Roots: roots, CAFile: caFile}
}

// TLSURL returns rawURL changed to reach its server through a new TLSProxy
// (the server's port is defaultPort when rawURL names none), with scheme
// (amqps, rediss) in place of its own.
func TLSURL(t testing.TB, rawURL, scheme, defaultPort string) (*url.URL, *TLSProxy) {
	t.Helper()
	u, target := ServerAddr(t, rawURL, defaultPort)
	p := NewTLSProxy(t, target)
	u.Scheme, u.Host = scheme, p.Addr
	return u, p
}

// ServerAddr parses rawURL and returns it with the host:port of its
// server, defaultPort when it names none: what a proxy in front of the
// server dials.
func ServerAddr(t testing.TB, rawURL, defaultPort string) (*url.URL, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Port() == "" {
		return u, net.JoinHostPort(u.Hostname(), defaultPort)
	}
	return u, u.Host
}
