package memory

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// Backend is an in-process result backend holding encoded result records.
// The zero value is not usable; call NewBackend.
type Backend struct {
	mu      sync.Mutex
	records map[string]record
	subs    transport.Subscribers
	chords  map[string]*chord
	groups  map[string][]byte
	closed  bool

	// With a ResultExpires, stored lists the records in the order they
	// were stored, which is the order they expire in.
	ttl    time.Duration
	stored expiryQueue
	now    func() int64 // sinceStart; a test's clock replaces it
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

// expiring is a record's place in Backend.stored.
type expiring struct {
	id      string
	expires int64
}

// BackendOption configures a Backend.
type BackendOption func(*Backend)

// ResultExpires makes each result record expire d after it is stored, as
// Celery's result_expires does (the engine passes its Config's, one day
// by default); 0, the default here, keeps records until ForgetResult.
// An expired record reads as missing (PENDING) at once; its memory is
// freed by a later store, which removes up to expireBatch expired records
// each time, oldest first, so a process that stops storing results keeps
// the last ones until it stores again. The bookkeeping cost engine's
// BenchmarkEngineMemoryTyped (one day, nothing expiring) about 5 % of its
// ns/task and 54 bytes per task: an entry per record in a list, its
// expiry beside it in the map, and a clock read per store and per read.
func ResultExpires(d time.Duration) BackendOption {
	return func(b *Backend) { b.ttl = max(d, 0) }
}

// expireBatch bounds the expired records one store removes, so that a
// burst stored a day ago is freed over the stores that follow it rather
// than all inside one.
const expireBatch = 64

// NewBackend returns an empty backend.
func NewBackend(opts ...BackendOption) *Backend {
	b := &Backend{records: make(map[string]record), now: sinceStart}
	for _, o := range opts {
		o(b)
	}
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
	var now int64
	if b.ttl > 0 {
		now = b.now()
		b.expireLocked(now)
	}
	for _, r := range recs {
		if old, ok := b.records[string(r.TaskID)]; ok && old.live(now) && isSuccess(old.data) {
			continue // Celery never replaces a SUCCESS record
		}
		id := string(r.TaskID)
		rec := record{data: append([]byte(nil), r.Data...)}
		if b.ttl > 0 {
			rec.expires = now + int64(b.ttl)
			b.stored.push(expiring{id, rec.expires})
		}
		b.records[id] = rec
		b.subs.Publish(id, rec.data)
	}
	return nil
}

// live reports whether r has not expired at now (0 when b has no
// ResultExpires, and r never expires then).
func (r record) live(now int64) bool { return r.expires == 0 || now < r.expires }

// expiryQueue is a FIFO of expiring records in chunks of expiryChunk: a
// record costs its entry and nothing more. (A slice that grew by append
// and moved down as its front was consumed cost 120 bytes per record
// while nothing expired, for the copies append makes as it grows.)
type expiryQueue struct {
	chunks [][]expiring // the first is read from head on, the last appended to
	head   int
	spare  []expiring // an emptied chunk, kept for the next one needed
}

const expiryChunk = 512

func (q *expiryQueue) push(e expiring) {
	n := len(q.chunks)
	if n == 0 || len(q.chunks[n-1]) == expiryChunk {
		c := q.spare
		q.spare = nil
		if c == nil {
			c = make([]expiring, 0, expiryChunk)
		}
		q.chunks = append(q.chunks, c)
		n++
	}
	q.chunks[n-1] = append(q.chunks[n-1], e)
}

// front returns the oldest entry; ok is false when q is empty.
func (q *expiryQueue) front() (e expiring, ok bool) {
	if len(q.chunks) == 0 || q.head == len(q.chunks[0]) {
		return expiring{}, false
	}
	return q.chunks[0][q.head], true
}

// pop drops the oldest entry.
func (q *expiryQueue) pop() {
	c := q.chunks[0]
	c[q.head] = expiring{}
	q.head++
	if q.head < len(c) {
		return
	}
	q.head = 0
	if len(q.chunks) == 1 {
		q.chunks[0] = c[:0]
		return
	}
	q.chunks[0] = nil
	q.chunks = q.chunks[1:]
	q.spare = c[:0]
}

// len returns the number of entries.
func (q *expiryQueue) len() int {
	n := -q.head
	for _, c := range q.chunks {
		n += len(c)
	}
	return n
}

// expireLocked removes up to expireBatch records expired at now, oldest
// first. A listed record that was stored again since (it expires later)
// or forgotten is skipped. b.mu is held.
func (b *Backend) expireLocked(now int64) {
	for range expireBatch {
		e, ok := b.stored.front()
		if !ok || e.expires > now {
			return
		}
		b.stored.pop()
		if r, ok := b.records[e.id]; ok && r.expires == e.expires {
			delete(b.records, e.id)
		}
	}
}

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
	rec, ok := b.records[taskID]
	if ok && b.ttl > 0 && !rec.live(b.now()) {
		return dst, false, nil
	}
	return append(dst, rec.data...), ok, nil
}

// ReadsLocally implements transport.LocalReader: a read is a map lookup.
func (b *Backend) ReadsLocally() bool { return true }

// ForgetResult implements transport.Backend.
func (b *Backend) ForgetResult(_ context.Context, taskID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.records, taskID)
	return nil
}

// Len returns the number of stored records, expired ones not yet removed
// included.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.records)
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
