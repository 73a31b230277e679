package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// parseURL applies a broker or backend URL as Celery writes them:
//
//	redis://[[user]:password@]host[:port][/db][?option=value&...]
//	rediss://...                     (TLS; ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile)
//	redis+socket:///path/to/socket[?virtual_host=db]   (also socket:// and unix://, db= accepted)
//
// Query parameters are redis-py's (db, virtual_host, password,
// socket_connect_timeout, the ssl_* ones) or transport options by their
// kombu names (visibility_timeout=60&global_keyprefix=app1:).
func parseURL(raw string, c *config) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadURL, redact(u), fmt.Sprintf(format, args...))
	}
	socket := false
	switch u.Scheme {
	case "redis":
	case "rediss":
		c.client.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	case "redis+socket", "socket", "unix":
		socket = true
	default:
		return bad("scheme %q is not redis, rediss, redis+socket, socket or unix", u.Scheme)
	}
	if u.User != nil {
		c.client.Username = u.User.Username()
		c.client.Password, _ = u.User.Password()
	}
	if socket {
		path := u.Path
		if u.Host != "" { // redis+socket://relative/path: kombu joins host and path
			path = u.Host + path
		}
		if path == "" {
			return bad("no socket path")
		}
		c.client.InitAddress = []string{path}
		c.client.DialCtxFn = func(ctx context.Context, addr string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, "unix", addr)
		}
	} else {
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = "6379"
		} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return bad("bad port %q", port)
		}
		c.client.InitAddress = []string{net.JoinHostPort(host, port)}
		if c.client.TLSConfig != nil {
			c.client.TLSConfig.ServerName = host
		}
		if db := strings.Trim(u.Path, "/"); db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 {
				return bad("database %q is not a non-negative integer", db)
			}
			c.db = n
		}
	}
	q := u.Query()
	var tlsFiles struct{ ca, cert, key string }
	for name, vals := range q {
		v := vals[len(vals)-1]
		switch name {
		case "db", "virtual_host":
			n, err := strconv.Atoi(strings.Trim(v, "/"))
			if err != nil || n < 0 {
				return bad("%s=%q is not a non-negative integer", name, v)
			}
			c.db = n
		case "password":
			c.client.Password = v
		case "username":
			c.client.Username = v
		case "socket_connect_timeout", "socket_timeout":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return bad("%s=%q is not a number of seconds", name, v)
			}
			if name == "socket_connect_timeout" {
				c.client.Dialer.Timeout = time.Duration(f * float64(time.Second))
			}
		case "ssl_cert_reqs":
			if c.client.TLSConfig == nil {
				return bad("%s needs a rediss:// URL", name)
			}
			switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(v), "CERT_")) {
			case "required", "optional":
				c.client.TLSConfig.InsecureSkipVerify = false
			case "none":
				c.client.TLSConfig.InsecureSkipVerify = true
			default:
				return bad("ssl_cert_reqs=%q is not required, optional or none", v)
			}
		case "ssl_ca_certs", "ssl_certfile", "ssl_keyfile":
			if c.client.TLSConfig == nil {
				return bad("%s needs a rediss:// URL", name)
			}
			switch name {
			case "ssl_ca_certs":
				tlsFiles.ca = v
			case "ssl_certfile":
				tlsFiles.cert = v
			default:
				tlsFiles.key = v
			}
		default:
			if err := c.set(name, v); err != nil {
				return fmt.Errorf("%w (in %s)", err, redact(u))
			}
		}
	}
	if tlsFiles.ca != "" {
		pem, err := os.ReadFile(tlsFiles.ca)
		if err != nil {
			return bad("ssl_ca_certs: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return bad("ssl_ca_certs: no PEM certificate in %s", tlsFiles.ca)
		}
		c.client.TLSConfig.RootCAs = pool
	}
	if tlsFiles.cert != "" || tlsFiles.key != "" {
		if tlsFiles.key == "" {
			tlsFiles.key = tlsFiles.cert // a combined PEM file, as Python accepts
		}
		cert, err := tls.LoadX509KeyPair(tlsFiles.cert, tlsFiles.key)
		if err != nil {
			return bad("ssl_certfile/ssl_keyfile: %v", err)
		}
		c.client.TLSConfig.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// redact returns the URL with its password hidden, for error messages.
func redact(u *url.URL) string {
	return u.Redacted()
}
