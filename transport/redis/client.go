package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// newClient builds the configuration from url and opts and connects.
func newClient(ctx context.Context, url string, opts []Option) (*config, rueidis.Client, error) {
	c := defaultConfig()
	if err := parseURL(url, c); err != nil {
		return nil, nil, err
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, nil, err
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.client.SelectDB = c.db
	c.client.DisableCache = true      // no client-side caching: records change under us
	c.client.ForceSingleClient = true // Celery's Redis transport is single-node
	if c.client.ClientName == "" {
		c.client.ClientName = "celerity"
	}
	client, err := rueidis.NewClient(c.client)
	if err != nil {
		return nil, nil, fmt.Errorf("redis: connect %s: %w", c.client.InitAddress[0], err)
	}
	if err := checkVersion(ctx, client); err != nil {
		client.Close()
		return nil, nil, err
	}
	return c, client, nil
}

// checkVersion refuses servers older than 6.2 (RPOP count, BLMOVE).
func checkVersion(ctx context.Context, client rueidis.Client) error {
	info, err := client.Do(ctx, client.B().Info().Section("server").Build()).ToString()
	if err != nil {
		return fmt.Errorf("redis: INFO server: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:")
		if !ok {
			continue
		}
		parts := strings.SplitN(v, ".", 3)
		major, _ := strconv.Atoi(parts[0])
		minor := 0
		if len(parts) > 1 {
			minor, _ = strconv.Atoi(parts[1])
		}
		if major < 6 || (major == 6 && minor < 2) {
			return fmt.Errorf("%w: server is %s", ErrServerVersion, v)
		}
		return nil
	}
	return nil // not Redis proper (a compatible server): let it try
}

// script is a Lua script run with EVALSHA, falling back to EVAL when the
// server does not know it yet (after a restart or SCRIPT FLUSH).
type script struct {
	src, sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// cmd builds an EVALSHA command.
func (s *script) cmd(c rueidis.Client, keys, args []string) rueidis.Completed {
	return c.B().Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// exec runs the script once.
func (s *script) exec(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	r := c.Do(ctx, s.cmd(c, keys, args))
	if isNoScript(r.Error()) {
		r = c.Do(ctx, c.B().Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build())
	}
	return r
}

// run is exec with retries of connection errors, for idempotent scripts.
// It waits for the reply regardless of ctx (the arguments may be views
// the caller reuses after return); ctx only stops the retries.
func (s *script) run(ctx context.Context, client rueidis.Client, budget time.Duration, log *slog.Logger,
	closed *atomic.Bool, what string, keys, args []string) (rueidis.RedisResult, error) {
	wctx := context.WithoutCancel(ctx)
	var res rueidis.RedisResult
	err := retry(ctx, budget, log, what, func() error {
		if closed.Load() {
			return ErrClosed
		}
		res = s.exec(wctx, client, keys, args)
		return res.Error()
	})
	if err != nil {
		return res, fmt.Errorf("redis: %s: %w", what, err)
	}
	return res, nil
}

func isNoScript(err error) bool {
	if err == nil {
		return false
	}
	var re *rueidis.RedisError
	return errors.As(err, &re) && re.IsNoScript()
}

// retry runs op until it succeeds, fails with an error that is not
// retriable (see retriable), ctx ends or budget has passed, sleeping with
// exponential backoff (10ms doubling to 1s) between attempts. It returns
// op's last error.
func retry(ctx context.Context, budget time.Duration, log *slog.Logger, what string, op func() error) error {
	deadline := time.Now().Add(budget)
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !retriable(err) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("redis: retrying after connection error", "op", what, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(min(backoff, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		}
		backoff = min(2*backoff, time.Second)
	}
}
