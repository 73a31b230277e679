package beat

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// RedisLocker is a Locker in Redis, for beat instances that share a Redis
// server (normally the broker's: see transport/redis's Broker.Client).
// It uses two keys:
//
//   - key: the lease, a string holding the leader's token, with a PX
//     expiry (SET NX PX to take it, PEXPIRE to extend it, both only by a
//     script that first checks the token);
//   - key + ":ticks": a hash from entry name to the entry's Record in
//     the fixed-width form "<tick> <last run> <count>", whose first 22
//     bytes order as the ticks do.
//
// Claim is one Lua script that checks the lease token and compares the
// ticks before writing, so a leader whose lease expired (paused, cut off)
// cannot claim a run, and no run is claimed twice. Lease expiry is
// measured by the Redis server's clock; ticks come from the leader's.
// On Redis Cluster, give key a hash tag ("{beat}") so that both keys
// share a slot. RedisLocker is safe for concurrent use; it does not own
// the client.
type RedisLocker struct {
	client         rueidis.Client
	lease, records string
}

var _ Locker = (*RedisLocker)(nil)

// NewRedisLocker returns a Locker on the lease key key and the record
// hash key + ":ticks". Instances that must not double-fire use the same
// key; with the Redis transport's global_keyprefix, start key with that
// prefix so that the keys sit with the broker's.
func NewRedisLocker(client rueidis.Client, key string) *RedisLocker {
	return &RedisLocker{client: client, lease: key, records: key + ":ticks"}
}

var (
	acquireScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`)

	releaseScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

	// claimScript: KEYS = lease, records; ARGV = token, entry, the
	// record's tick prefix, the record. 1: claimed; 0: the recorded tick
	// is not before ours; -1: the lease is not ours.
	claimScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local cur = redis.call('HGET', KEYS[2], ARGV[2])
if cur and string.sub(cur, 1, 22) >= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1`)
)

// Acquire implements Locker.
func (l *RedisLocker) Acquire(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	ms := max(ttl.Milliseconds(), 1)
	n, err := acquireScript.Exec(ctx, l.client, []string{l.lease},
		[]string{token, strconv.FormatInt(ms, 10)}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("beat: acquire lease %s: %w", l.lease, err)
	}
	return n == 1, nil
}

// Release implements Locker.
func (l *RedisLocker) Release(ctx context.Context, token string) error {
	if err := releaseScript.Exec(ctx, l.client, []string{l.lease}, []string{token}).Error(); err != nil {
		return fmt.Errorf("beat: release lease %s: %w", l.lease, err)
	}
	return nil
}

// Load implements Locker. A malformed record is an error wrapping
// ErrState.
func (l *RedisLocker) Load(ctx context.Context) (map[string]Record, error) {
	m, err := l.client.Do(ctx, l.client.B().Hgetall().Key(l.records).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("beat: load %s: %w", l.records, err)
	}
	out := make(map[string]Record, len(m))
	for name, v := range m {
		var rec Record
		if err := decodeRecord(v, &rec); err != nil {
			return nil, fmt.Errorf("beat: %s entry %s: %w", l.records, quote(name), err)
		}
		out[name] = rec
	}
	return out, nil
}

// Claim implements Locker.
func (l *RedisLocker) Claim(ctx context.Context, token, name string, rec Record) error {
	v, err := appendRecord(nil, rec)
	if err != nil {
		return fmt.Errorf("beat: claim entry %s: %w", quote(name), err)
	}
	n, err := claimScript.Exec(ctx, l.client, []string{l.lease, l.records},
		[]string{token, name, string(v[:tickWidth]), string(v)}).AsInt64()
	switch {
	case err != nil:
		return fmt.Errorf("beat: claim entry %s: %w", quote(name), err)
	case n == -1:
		return fmt.Errorf("%w: entry %s (lease %s)", ErrLeaseLost, quote(name), l.lease)
	case n == 0:
		return fmt.Errorf("%w: entry %s tick %s", ErrTickClaimed, quote(name), rec.Tick.Format(time.RFC3339Nano))
	}
	return nil
}
