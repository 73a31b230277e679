package pprof

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrDisabled is returned by Serve, Start and ResolveAddr for an empty
// address (or "off"): the endpoint is off unless asked for.
var ErrDisabled = errors.New("pprof: endpoint disabled (no address)")

// ErrBadAddr is returned for an address that is not host:port or a port.
var ErrBadAddr = errors.New("pprof: bad listen address")

// Default timeouts of the server (see WithTimeouts).
const (
	DefaultReadTimeout  = 10 * time.Second
	DefaultWriteTimeout = 60 * time.Second
	DefaultIdleTimeout  = 2 * time.Minute
	// DefaultShutdownTimeout bounds Serve's graceful shutdown, after which
	// open connections are closed.
	DefaultShutdownTimeout = 5 * time.Second
)

// Option configures Handler, Start and Serve.
type Option func(*config)

type config struct {
	metrics                            *Metrics
	read, write, idle, shutdownTimeout time.Duration
	onListen                           func(net.Addr)
}

// WithMetrics serves m's registry on /metrics. Without it the handler
// serves a Metrics of its own (the Go runtime and process collectors).
func WithMetrics(m *Metrics) Option { return func(c *config) { c.metrics = m } }

// WithTimeouts sets the server's read (also used for the headers), write
// and idle timeouts; zero keeps a default. A CPU profile or trace adds its
// own duration to the write timeout.
func WithTimeouts(read, write, idle time.Duration) Option {
	return func(c *config) {
		if read > 0 {
			c.read = read
		}
		if write > 0 {
			c.write = write
		}
		if idle > 0 {
			c.idle = idle
		}
	}
}

// WithShutdownTimeout bounds how long Serve waits for requests in flight
// when its context ends (default DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.shutdownTimeout = d
		}
	}
}

// OnListen makes Start and Serve call f with the address they listen on
// (useful with port 0), before they serve.
func OnListen(f func(addr net.Addr)) Option { return func(c *config) { c.onListen = f } }

func newConfig(opts []Option) config {
	c := config{read: DefaultReadTimeout, write: DefaultWriteTimeout, idle: DefaultIdleTimeout,
		shutdownTimeout: DefaultShutdownTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.metrics == nil {
		c.metrics = NewMetrics()
	}
	return c
}

// Handler returns a handler serving /debug/pprof/ and /metrics (see the
// package documentation), for a service that mounts them on a server of
// its own. It registers nothing on http.DefaultServeMux. It is safe for
// concurrent use.
func Handler(opts ...Option) http.Handler {
	c := newConfig(opts)
	return newMux(&c)
}

func newMux(c *config) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix, serveIndex)
	mux.HandleFunc("GET "+prefix+"cmdline", serveCmdline)
	mux.HandleFunc("GET "+prefix+"profile", serveCPU)
	mux.HandleFunc("GET "+prefix+"trace", serveTrace)
	mux.HandleFunc("GET "+prefix+"symbol", serveSymbol)
	mux.HandleFunc("POST "+prefix+"symbol", serveSymbol)
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, prefix, http.StatusFound)
	})
	return mux
}

// ResolveAddr returns the address the endpoint listens on for addr:
// a host:port as given, ":port" or "port" on the loopback interface
// (127.0.0.1). "" and "off" return ErrDisabled.
func ResolveAddr(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" || strings.EqualFold(addr, "off") {
		return "", ErrDisabled
	}
	if _, err := strconv.ParseUint(addr, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", addr), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrBadAddr, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%w %q: port %q is not a number", ErrBadAddr, addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Server is a running endpoint. Its methods are safe for concurrent use.
type Server struct {
	srv             *http.Server
	ln              net.Listener
	done            chan struct{}
	err             error
	shutdownTimeout time.Duration
}

// Start listens on addr (see ResolveAddr) and serves in a goroutine of its
// own until Shutdown or Close.
func Start(addr string, opts ...Option) (*Server, error) {
	resolved, err := ResolveAddr(addr)
	if err != nil {
		return nil, err
	}
	c := newConfig(opts)
	ln, err := net.Listen("tcp", resolved)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           newMux(&c),
			ReadHeaderTimeout: c.read,
			ReadTimeout:       c.read,
			WriteTimeout:      c.write,
			IdleTimeout:       c.idle,
			MaxHeaderBytes:    64 << 10,
		},
		ln:              ln,
		done:            make(chan struct{}),
		shutdownTimeout: c.shutdownTimeout,
	}
	if c.onListen != nil {
		c.onListen(ln.Addr())
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("pprof: serve: %w", err)
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on (with the real port when
// it was started on port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL returns "http://<addr>", the base of the server's routes.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends, then closes what is left open. It returns the error that
// stopped serving, if any.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return errors.Join(s.err, err)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return errors.Join(s.err, err)
}

// Serve listens on addr (see ResolveAddr) and serves until ctx ends, then
// shuts the server down gracefully (see WithShutdownTimeout) and returns
// nil. It returns ErrDisabled at once for an empty address, and the
// listen error when the address is taken.
func Serve(ctx context.Context, addr string, opts ...Option) error {
	s, err := Start(addr, opts...)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-s.done:
		return s.err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
