package redis_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/redis"
)

// testURL returns the test server's URL (skipping or failing the test when
// there is none).
func testURL(t testing.TB) string {
	t.Helper()
	return brokertest.RedisURL(t)
}

// withDB returns raw with its database number replaced by db.
func withDB(t testing.TB, raw string, db int) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + strconv.Itoa(db)
	return u.String()
}

// interopDB is the database the tests that run Python Celery use (Python's
// result backend has no key prefix); they still isolate themselves with
// their own queue names and key prefixes, and delete only their own keys.
const interopDB = 13

// newBroker returns a broker whose keys all start with a prefix unique to
// t, deleted when t ends.
func newBroker(t testing.TB, opts ...redis.Option) (*redis.Broker, string) {
	t.Helper()
	return newBrokerURL(t, testURL(t), opts...)
}

// newBrokerURL is newBroker reaching the test server at raw (through a
// proxy, say).
func newBrokerURL(t testing.TB, raw string, opts ...redis.Option) (*redis.Broker, string) {
	t.Helper()
	prefix := brokertest.Prefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.NewBroker(ctx, raw, append([]redis.Option{redis.WithGlobalKeyPrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("NewBroker: %v", err)
	}
	t.Cleanup(func() {
		b.Close()
		deletePrefix(t, testURL(t), prefix)
	})
	return b, prefix
}

// newBackend returns a backend whose keys start with a prefix unique to t.
func newBackend(t testing.TB, opts ...redis.Option) (*redis.Backend, string) {
	t.Helper()
	return newBackendURL(t, testURL(t), opts...)
}

// newBackendURL is newBackend reaching the test server at raw.
func newBackendURL(t testing.TB, raw string, opts ...redis.Option) (*redis.Backend, string) {
	t.Helper()
	prefix := brokertest.Prefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.NewBackend(ctx, raw, append([]redis.Option{redis.WithResultKeyPrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	t.Cleanup(func() {
		b.Close()
		deletePrefix(t, testURL(t), prefix)
	})
	return b, prefix
}

// rawClient returns a plain client on url's database, closed with t.
func rawClient(t testing.TB, raw string) rueidis.Client {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := strconv.Atoi(trimSlash(u.Path))
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{u.Hostname() + ":" + port},
		SelectDB: db, DisableCache: true, ForceSingleClient: true, Password: password(u)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func password(u *url.URL) string {
	if u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}

// deletePrefix deletes every key starting with prefix.
func deletePrefix(t testing.TB, raw, prefix string) {
	c := rawClient(t, raw)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(prefix+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			t.Logf("cleanup of %s*: %v", prefix, err)
			return
		}
		if len(e.Elements) > 0 {
			c.Do(ctx, c.B().Del().Key(e.Elements...).Build())
		}
		if e.Cursor == 0 {
			return
		}
		cursor = e.Cursor
	}
}
