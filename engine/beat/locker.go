package beat

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"
)

// Locker is what keeps several beat instances from sending the same run
// twice: a lease that at most one instance (the leader) holds at a time,
// and the shared record of the last run claimed for each entry, changed
// only by the lease holder and only forward. See the package
// documentation for how Service uses it.
//
// A token identifies one holder (one Service); tokens must be unique
// across instances. Implementations must be safe for concurrent use;
// MemoryLocker and RedisLocker are the two in this package.
type Locker interface {
	// Acquire takes the lease for token if no one holds it, or extends
	// it if token already does, so that it expires ttl from now. It
	// reports whether token holds the lease on return.
	Acquire(ctx context.Context, token string, ttl time.Duration) (held bool, err error)
	// Release gives the lease up if token holds it, and does nothing
	// otherwise.
	Release(ctx context.Context, token string) error
	// Load returns the record of every entry that has one, by entry name.
	Load(ctx context.Context) (map[string]Record, error)
	// Claim atomically replaces the record of entry name by rec if token
	// holds the lease (else ErrLeaseLost) and rec.Tick is after the
	// recorded Tick (else ErrTickClaimed); an entry with no record
	// accepts any rec.
	Claim(ctx context.Context, token, name string, rec Record) error
}

// Record is the shared state of one entry: the scheduled time of its
// last claimed run and the entry's persisted state after that run.
type Record struct {
	// Tick is the scheduled time of the run (Schedule.Next of the
	// previous last run): the run's identity. Ticks of an entry only
	// grow.
	Tick          time.Time
	LastRunAt     time.Time // when the run was claimed (Celery's last_run_at)
	TotalRunCount int
}

// Records are stored in a fixed-width text form whose first tickWidth
// bytes compare, as strings, in the order of their ticks, so that a Lua
// script can compare ticks without floating point:
//
//	<tick> <last run> <total run count>
//
// where a time is 13 digits of Unix seconds + timeOffset and 9 digits of
// nanoseconds (years 1 to 300000).
const (
	tickWidth  = 22
	timeOffset = 100_000_000_000
	maxSeconds = 10_000_000_000_000 // 13 digits
)

// appendTime appends the fixed-width form of t.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	s := t.Unix() + timeOffset
	if s < 0 || s >= maxSeconds {
		return dst, fmt.Errorf("%w: time %v is outside the years a record can hold", ErrState, t)
	}
	dst = appendPadded(dst, uint64(s), 13)
	return appendPadded(dst, uint64(t.Nanosecond()), 9), nil
}

func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	b := strconv.AppendUint(buf[:0], v, 10)
	for range width - len(b) {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

// appendRecord appends the stored form of rec to dst.
func appendRecord(dst []byte, rec Record) ([]byte, error) {
	if rec.TotalRunCount < 0 {
		return dst, fmt.Errorf("%w: negative total run count %d", ErrState, rec.TotalRunCount)
	}
	dst, err := appendTime(dst, rec.Tick)
	if err != nil {
		return dst, err
	}
	dst = append(dst, ' ')
	if dst, err = appendTime(dst, rec.LastRunAt); err != nil {
		return dst, err
	}
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, int64(rec.TotalRunCount), 10), nil
}

// decodeRecord parses the stored form into rec. Errors wrap ErrState.
func decodeRecord(s string, rec *Record) error {
	if len(s) < 2*tickWidth+3 || s[tickWidth] != ' ' || s[2*tickWidth+1] != ' ' {
		return fmt.Errorf("%w: malformed record %s", ErrState, quote(s))
	}
	tick, err := parseTime(s[:tickWidth])
	if err != nil {
		return err
	}
	last, err := parseTime(s[tickWidth+1 : 2*tickWidth+1])
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(s[2*tickWidth+2:], 10, 31)
	if err != nil {
		return fmt.Errorf("%w: record %s: total run count: %v", ErrState, quote(s), err)
	}
	*rec = Record{Tick: tick, LastRunAt: last, TotalRunCount: int(n)}
	return nil
}

func parseTime(s string) (time.Time, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: malformed record time %s", ErrState, quote(s))
		}
	}
	sec, _ := strconv.ParseInt(s[:13], 10, 64) // 13 digits fit
	ns, _ := strconv.ParseInt(s[13:], 10, 64)
	return time.Unix(sec-timeOffset, ns).UTC(), nil
}

// MemoryLocker is a Locker in process memory: for several Services in one
// process (tests, the memory transport). A Service with no Locker uses a
// private one. It is safe for concurrent use.
type MemoryLocker struct {
	now func() time.Time // time.Now; tests drive it

	mu      sync.Mutex
	holder  string
	expires time.Time
	records map[string]Record
}

var _ Locker = (*MemoryLocker)(nil)

// NewMemoryLocker returns an empty MemoryLocker.
func NewMemoryLocker() *MemoryLocker {
	return &MemoryLocker{now: time.Now, records: make(map[string]Record)}
}

// Acquire implements Locker.
func (l *MemoryLocker) Acquire(_ context.Context, token string, ttl time.Duration) (bool, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder != "" && l.holder != token && now.Before(l.expires) {
		return false, nil
	}
	l.holder, l.expires = token, now.Add(ttl)
	return true, nil
}

// Release implements Locker.
func (l *MemoryLocker) Release(_ context.Context, token string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == token {
		l.holder = ""
	}
	return nil
}

// Load implements Locker. The map is the caller's.
func (l *MemoryLocker) Load(context.Context) (map[string]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.records), nil
}

// Claim implements Locker.
func (l *MemoryLocker) Claim(_ context.Context, token, name string, rec Record) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder != token || !now.Before(l.expires) {
		return fmt.Errorf("%w: entry %s", ErrLeaseLost, quote(name))
	}
	if cur, ok := l.records[name]; ok && !rec.Tick.After(cur.Tick) {
		return fmt.Errorf("%w: entry %s tick %s (recorded %s)", ErrTickClaimed, quote(name),
			rec.Tick.Format(time.RFC3339Nano), cur.Tick.Format(time.RFC3339Nano))
	}
	rec.Tick, rec.LastRunAt = rec.Tick.Round(0), rec.LastRunAt.Round(0)
	l.records[name] = rec
	return nil
}
