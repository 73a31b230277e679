package brokertest

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// CleanupRedisPrefix deletes, when the test ends, every key of the Redis at
// rawURL (host, password and DB taken from it) that starts with prefix.
func CleanupRedisPrefix(t testing.TB, rawURL, prefix string) {
	t.Helper()
	if prefix == "" {
		t.Fatal("brokertest: refusing to clean up an empty prefix")
	}
	CleanupRedisKeys(t, rawURL, prefix+"*")
}

// CleanupRedisKeys deletes, when the test ends, the keys matching each
// glob pattern (Redis SCAN MATCH syntax). Result records are not prefixed
// (Celery 5.2's result backend ignores global_keyprefix): tests name them.
func CleanupRedisKeys(t testing.TB, rawURL string, patterns ...string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	opt := rueidis.ClientOption{InitAddress: []string{u.Host}, DisableCache: true}
	if u.User != nil {
		opt.Password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if opt.SelectDB, err = strconv.Atoi(db); err != nil {
			t.Fatalf("brokertest: db %q: %v", db, err)
		}
	}
	t.Cleanup(func() {
		c, err := rueidis.NewClient(opt)
		if err != nil {
			t.Logf("brokertest: cleanup of %v: %v", patterns, err)
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, p := range patterns {
			if p == "" || p == "*" {
				t.Errorf("brokertest: refusing to clean up pattern %q", p)
				continue
			}
			var cursor uint64
			for {
				e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match(p).Count(1000).Build()).AsScanEntry()
				if err != nil {
					t.Logf("brokertest: cleanup of %s: %v", p, err)
					break
				}
				if len(e.Elements) > 0 {
					c.Do(ctx, c.B().Del().Key(e.Elements...).Build())
				}
				if e.Cursor == 0 {
					break
				}
				cursor = e.Cursor
			}
		}
	})
}
