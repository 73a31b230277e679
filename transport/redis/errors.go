package redis

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/rueidis"
)

// Sentinel errors. Functions wrap them with %w and context; test with
// errors.Is.
var (
	// ErrBadURL means a broker or backend URL is not one this package
	// understands (scheme, host, database number or query parameter).
	ErrBadURL = errors.New("redis: bad URL")
	// ErrBadOption means a transport option has an unknown name or an
	// invalid value.
	ErrBadOption = errors.New("redis: bad transport option")
	// ErrClosed is returned by operations on a closed broker, consumer,
	// backend or subscription.
	ErrClosed = errors.New("redis: closed")
	// ErrNotHeld is returned by Ack and Reject for a message this consumer
	// does not hold (already acknowledged, or fetched by another consumer).
	ErrNotHeld = errors.New("redis: message not held by this consumer")
	// ErrServerVersion means the Redis server is older than 6.2, which
	// lacks RPOP with a count and BLMOVE.
	ErrServerVersion = errors.New("redis: server too old (need Redis >= 6.2)")
)

// errRetry asks retry for another attempt (after a fixable server error).
var errRetry = errors.New("redis: retry")

// retriable reports whether err is worth retrying: a connection error,
// or a server that is loading its data set or otherwise transiently busy.
// Server errors caused by the command itself, and context errors, are not.
func retriable(err error) bool {
	if errors.Is(err, errRetry) {
		return true
	}
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if rueidis.IsRedisNil(err) {
		return false
	}
	var re *rueidis.RedisError
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	// Network errors, and rueidis.ErrClosing, which rueidis also returns
	// while it cannot connect; our own Close is tracked by the callers.
	return true
}
