package memory

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/transport"
)

// Backend is an in-process result backend holding encoded result records.
// The zero value is not usable; call NewBackend.
type Backend struct {
	mu sync.Mutex
	// records holds the records stored since genStart; with a
	// ResultExpires, old holds those of the ttl before it, and older ones
	// are gone (see rotateLocked). A record stored again is in records
	// only.
	records  map[string]record
	old      map[string]record
	genStart int64
	subs     transport.Subscribers
	chords   map[string]*chord
	groups   map[string][]byte
	closed   bool

	ttl time.Duration
	now func() int64 // sinceStart; a test's clock replaces it
}

// start anchors sinceStart.
var start = time.Now()

// sinceStart is a monotonic clock, immune to changes of the wall clock,
// and cheaper to read than time.Now: nanoseconds since the package was
// initialised.
func sinceStart() int64 { return int64(time.Since(start)) }

// record is a stored result record and when it expires (sinceStart
// nanoseconds; 0: never).
type record struct {
	data    []byte
	expires int64
}

// BackendOption configures a Backend.
type BackendOption func(*Backend)

// ResultExpires makes each result record expire d after it is stored, as
// Celery's result_expires does (the engine passes its Config's, one day
// by default); 0, the default here, keeps records until ForgetResult.
// An expired record reads as missing (PENDING) at once. Its memory goes
// with its generation's: records are kept in two maps, those stored in
// the current period of d and those of the one before, and when a period
// ends the older map, all of whose records have expired, is dropped
// whole. So a record's memory is held for d to 2d, and expiry costs no
// bookkeeping per record beyond its expiry time (a list of records in
// the order they expire cost 24 bytes per record until it expired, also
// for records forgotten at once). With it, engine's
// BenchmarkEngineMemoryTyped (one day, nothing expiring) ran 3.08-3.13
// us/task against 2.93-3.01 without (4 interleaved pairs): a clock read
// per store and per read.
func ResultExpires(d time.Duration) BackendOption {
	return func(b *Backend) { b.ttl = max(d, 0) }
}

// NewBackend returns an empty backend.
func NewBackend(opts ...BackendOption) *Backend {
	b := &Backend{records: make(map[string]record), now: sinceStart}
	for _, o := range opts {
		o(b)
	}
	b.genStart = b.now()
	return b
}

var (
	_ transport.Backend      = (*Backend)(nil)
	_ transport.ChordBackend = (*Backend)(nil)
	_ transport.GroupStore   = (*Backend)(nil)
	_ transport.LocalReader  = (*Backend)(nil)
)

// StoreResults implements transport.Backend. It copies each record once
// (records are immutable after that, so readers may keep views).
func (b *Backend) StoreResults(_ context.Context, recs ...transport.ResultRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	now := b.rotateLocked()
	for _, r := range recs {
		// A view of the id, only to look it up: string(r.TaskID) passed on
		// would be allocated.
		old, inOld, ok := b.lookupLocked(unsafeconv.String(r.TaskID))
		if ok && old.live(now) && isSuccess(old.data) {
			continue // Celery never replaces a SUCCESS record
		}
		id := string(r.TaskID)
		if inOld {
			delete(b.old, id)
		}
		rec := record{data: append([]byte(nil), r.Data...)}
		if b.ttl > 0 {
			rec.expires = now + int64(b.ttl)
		}
		b.records[id] = rec
		b.subs.Publish(id, rec.data)
	}
	return nil
}

// lookupLocked finds the record of id, and tells whether it is in b.old.
// b.mu is held.
func (b *Backend) lookupLocked(id string) (r record, inOld, ok bool) {
	if r, ok = b.records[id]; ok {
		return r, false, true
	}
	r, ok = b.old[id]
	return r, ok, ok
}

// rotateLocked returns the time, and starts a new generation of records
// if the current one began ttl ago or more: the old map is dropped (all
// its records were stored before the current generation began, and have
// expired), and the current one becomes the old. After two periods or
// more without a rotation both are dropped. Without a ResultExpires it
// returns 0. b.mu is held.
func (b *Backend) rotateLocked() int64 {
	if b.ttl == 0 {
		return 0
	}
	now, ttl := b.now(), int64(b.ttl)
	switch age := now - b.genStart; {
	case age < ttl:
	case age < 2*ttl:
		b.old, b.records = b.records, make(map[string]record)
		b.genStart += ttl
	default:
		b.old, b.records = nil, make(map[string]record)
		b.genStart = now
	}
	return now
}

// live reports whether r has not expired at now (0 when b has no
// ResultExpires, and r never expires then).
func (r record) live(now int64) bool { return r.expires == 0 || now < r.expires }

func isSuccess(rec []byte) bool {
	var r codec.Result
	return codec.DecodeResultJSON(rec, &r) == nil && r.State == codec.StateSuccess
}

// GetResult implements transport.Backend.
func (b *Backend) GetResult(ctx context.Context, taskID string, dst []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil { // as a networked backend's read fails
		return dst, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return dst, false, ErrClosed
	}
	now := b.rotateLocked()
	rec, _, ok := b.lookupLocked(taskID)
	if !ok || !rec.live(now) {
		return dst, false, nil
	}
	return append(dst, rec.data...), true, nil
}

// ReadsLocally implements transport.LocalReader: a read is a map lookup.
func (b *Backend) ReadsLocally() bool { return true }

// ForgetResult implements transport.Backend.
func (b *Backend) ForgetResult(_ context.Context, taskID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.records, taskID)
	delete(b.old, taskID)
	return nil
}

// Len returns the number of stored records, expired ones not yet dropped
// included.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.records) + len(b.old)
}

// Subscribe implements transport.Backend.
func (b *Backend) Subscribe(_ context.Context, taskID string) (transport.Subscription, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return b.subs.Subscribe(taskID)
}

// Close ends every subscription.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.subs.Close()
	return nil
}

// chord holds one chord's counters, as Celery 5.2 keeps them in Redis:
// size (.s), extra parts (.t) and the parts so far (.j) by group index.
type chord struct {
	size, extra int
	parts       []chordPart
}

type chordPart struct {
	index int
	data  []byte
}

// SetChordSize records the number of header tasks of chord groupID.
func (b *Backend) SetChordSize(_ context.Context, groupID string, size int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.chordLocked(groupID)
	c.size = size
	return nil
}

// AddToChord counts one more header task for chord groupID.
func (b *Backend) AddToChord(_ context.Context, groupID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.chordLocked(groupID).extra++
	return nil
}

func (b *Backend) chordLocked(groupID string) *chord {
	if b.chords == nil {
		b.chords = make(map[string]*chord)
	}
	c := b.chords[groupID]
	if c == nil {
		c = &chord{}
		b.chords[groupID] = c
	}
	return c
}

// ChordPartDone records a finished header task (part is the encoded
// [1, id, state, result] entry). When the parts reach size+extra, done is
// true and parts holds them ordered by group index, those without one
// (transport.NoGroupIndex) last and among themselves by their bytes, as
// Redis orders members of equal score. Only one caller sees done for a
// chord.
func (b *Backend) ChordPartDone(_ context.Context, groupID string, index int, part []byte) (bool, [][]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.chordLocked(groupID)
	for _, p := range c.parts {
		// A header task reported twice (redelivered and run again) counts
		// once and never completes the chord a second time.
		if (index != transport.NoGroupIndex && p.index == index) || string(p.data) == string(part) {
			return false, nil, nil
		}
	}
	c.parts = append(c.parts, chordPart{index: index, data: append([]byte(nil), part...)})
	if c.size == 0 || len(c.parts) != c.size+c.extra {
		return false, nil, nil
	}
	sorted := slices.Clone(c.parts)
	slices.SortFunc(sorted, func(x, y chordPart) int {
		switch {
		case x.index == y.index:
			return bytes.Compare(x.data, y.data)
		case x.index == transport.NoGroupIndex:
			return 1
		case y.index == transport.NoGroupIndex:
			return -1
		}
		return x.index - y.index
	})
	out := make([][]byte, len(sorted))
	for i, p := range sorted {
		out[i] = p.data
	}
	return true, out, nil
}

// ChordCleanup forgets chord groupID's counters.
func (b *Backend) ChordCleanup(_ context.Context, groupID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.chords, groupID)
	return nil
}

// SaveGroup stores a group record ({"result": <GroupResult tuple>}).
func (b *Backend) SaveGroup(_ context.Context, groupID string, rec []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.groups == nil {
		b.groups = make(map[string][]byte)
	}
	b.groups[groupID] = append([]byte(nil), rec...)
	return nil
}

// GetGroup appends the saved group record of groupID to dst.
func (b *Backend) GetGroup(_ context.Context, groupID string, dst []byte) ([]byte, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec, ok := b.groups[groupID]
	return append(dst, rec...), ok, nil
}

// ForgetGroup deletes the saved group record of groupID.
func (b *Backend) ForgetGroup(_ context.Context, groupID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.groups, groupID)
	return nil
}
