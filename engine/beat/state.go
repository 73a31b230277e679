package beat

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/goccy/go-json"
)

// stateVersion is the version of the state file format written by
// AppendState.
const stateVersion = 1

// MaxStateSize is the largest state file ReadStateFile accepts, in bytes.
const MaxStateSize = 64 << 20

// State is the persisted part of a schedule, Celery's celerybeat-schedule
// shelve: when each entry last ran, and the location the times were
// scheduled in. A State is not safe for concurrent use.
//
// The file form (AppendState, DecodeState) is JSON:
//
//	{"version": 1, "timezone": "Europe/Berlin",
//	 "entries": {"report": {"last_run_at": "2024-05-10T07:00:00.012Z", "total_run_count": 41}}}
//
// with times in RFC 3339 (UTC, nanoseconds). Unknown object keys are
// ignored; an unknown version is an error.
type State struct {
	// Timezone is the name of the location (time.Location.String) the
	// schedule ran in. Restore discards the state when it changes, as
	// Celery resets its schedule file when the timezone setting changes.
	Timezone string
	Entries  map[string]EntryState // by entry name
}

// EntryState is the persisted state of one entry.
type EntryState struct {
	LastRunAt     time.Time
	TotalRunCount int
}

type stateFile struct {
	Version  *int                      `json:"version"`
	Timezone string                    `json:"timezone"`
	Entries  map[string]entryStateFile `json:"entries"`
}

type entryStateFile struct {
	LastRunAt     time.Time `json:"last_run_at"`
	TotalRunCount int       `json:"total_run_count"`
}

// Snapshot returns the state of entries for saving, recorded as scheduled
// in loc (nil means UTC).
func Snapshot(entries []*Entry, loc *time.Location) *State {
	if loc == nil {
		loc = time.UTC
	}
	st := &State{Timezone: loc.String(), Entries: make(map[string]EntryState, len(entries))}
	for _, e := range entries {
		st.Entries[e.Name] = EntryState{LastRunAt: e.LastRunAt, TotalRunCount: e.TotalRunCount}
	}
	return st
}

// Restore sets LastRunAt and TotalRunCount of each entry from st (which
// may be nil: no state yet) and applies the catch-up policy of the package
// documentation:
//
//   - An entry found in st gets its persisted last run. If runs were
//     scheduled while beat was down, the entry is due at once and fires
//     once, not once per missed run (Celery's behaviour).
//   - An entry not in st (new, or never run) gets LastRunAt = now, as
//     Celery's ScheduleEntry defaults last_run_at to now: an interval entry
//     first fires Every after start, a crontab entry at its next time.
//
// If st was saved in another location than loc (nil means UTC), st is
// ignored and every entry starts as new; reset reports that. Entries of st
// with no entry of that name are dropped, as Celery drops them.
func (st *State) Restore(entries []*Entry, loc *time.Location, now time.Time) (reset bool) {
	if loc == nil {
		loc = time.UTC
	}
	var saved map[string]EntryState
	if st != nil {
		if len(st.Entries) > 0 && st.Timezone != loc.String() {
			reset = true
		} else {
			saved = st.Entries
		}
	}
	for _, e := range entries {
		if es, ok := saved[e.Name]; ok && !es.LastRunAt.IsZero() {
			e.LastRunAt, e.TotalRunCount = es.LastRunAt, es.TotalRunCount
		} else {
			e.LastRunAt, e.TotalRunCount = now, 0
		}
	}
	return reset
}

// AppendState appends the file form of st to dst and returns the extended
// buffer.
func AppendState(dst []byte, st *State) ([]byte, error) {
	v := stateVersion
	f := stateFile{Version: &v, Timezone: st.Timezone, Entries: make(map[string]entryStateFile, len(st.Entries))}
	for name, es := range st.Entries {
		f.Entries[name] = entryStateFile{LastRunAt: es.LastRunAt.UTC(), TotalRunCount: es.TotalRunCount}
	}
	b, err := json.Marshal(&f)
	if err != nil {
		return dst, fmt.Errorf("beat: encode schedule state: %w", err)
	}
	dst = append(dst, b...)
	return append(dst, '\n'), nil
}

// DecodeState parses the file form into st, replacing its contents.
// Errors wrap ErrState.
func DecodeState(data []byte, st *State) error {
	var f stateFile
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrState)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("%w: %v", ErrState, err)
	}
	if f.Version == nil {
		return fmt.Errorf("%w: missing version", ErrState)
	}
	if *f.Version != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrState, *f.Version, stateVersion)
	}
	st.Timezone = f.Timezone
	st.Entries = make(map[string]EntryState, len(f.Entries))
	for name, es := range f.Entries {
		if es.TotalRunCount < 0 {
			return fmt.Errorf("%w: entry %s: negative total_run_count %d", ErrState, quote(name), es.TotalRunCount)
		}
		st.Entries[name] = EntryState(es)
	}
	return nil
}

// ReadStateFile reads a state file written by WriteStateFile. When there
// is none yet the error satisfies errors.Is(err, fs.ErrNotExist); Restore
// takes a nil *State for that case.
func ReadStateFile(path string) (*State, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("beat: schedule state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("beat: schedule state %s: %w", path, err)
	}
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrState, path, MaxStateSize)
	}
	st := new(State)
	if err := DecodeState(data, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// WriteStateFile writes st to path atomically: it writes and syncs a
// temporary file in the same directory, renames it over path and syncs the
// directory, so a crash leaves either the old or the new state, never a
// torn one.
func WriteStateFile(path string, st *State) (err error) {
	data, err := AppendState(nil, st)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("beat: write schedule state: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("beat: write schedule state: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("beat: write schedule state: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("beat: write schedule state: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("beat: write schedule state: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("beat: sync %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("beat: sync %s: %w", dir, err)
	}
	return nil
}
