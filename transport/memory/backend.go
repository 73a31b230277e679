package memory

import (
	"bytes"
	"context"
	"slices"
	"sync"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// Backend is an in-process result backend holding encoded result records.
// The zero value is not usable; call NewBackend.
type Backend struct {
	mu      sync.Mutex
	records map[string][]byte
	subs    transport.Subscribers
	chords  map[string]*chord
	groups  map[string][]byte
	closed  bool
}

// NewBackend returns an empty backend.
func NewBackend() *Backend {
	return &Backend{records: make(map[string][]byte)}
}

var (
	_ transport.Backend      = (*Backend)(nil)
	_ transport.ChordBackend = (*Backend)(nil)
	_ transport.GroupStore   = (*Backend)(nil)
)

// StoreResults implements transport.Backend. It copies each record once
// (records are immutable after that, so readers may keep views).
func (b *Backend) StoreResults(_ context.Context, recs ...transport.ResultRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	for _, r := range recs {
		id := string(r.TaskID)
		if old, ok := b.records[id]; ok && isSuccess(old) {
			continue // Celery never replaces a SUCCESS record
		}
		data := append([]byte(nil), r.Data...)
		b.records[id] = data
		b.subs.Publish(id, data)
	}
	return nil
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
	return append(dst, rec...), ok, nil
}

// ForgetResult implements transport.Backend.
func (b *Backend) ForgetResult(_ context.Context, taskID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.records, taskID)
	return nil
}

// Len returns the number of stored records.
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
