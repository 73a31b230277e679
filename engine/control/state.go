package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	json "github.com/goccy/go-json"
)

// stateFile is the --statedb content: Celery's persistent worker state
// (revoked ids with the time of revocation, and the clock), as JSON.
type stateFile struct {
	Revoked map[string]pyFloat `json:"revoked"`
	Clock   int64              `json:"clock"`
}

// maxStateFile bounds the state file read at start.
const maxStateFile = 64 << 20

// loadState restores revoked ids and the clock from the state file; a
// missing file is an empty state.
func (s *Server) loadState() error {
	f, err := os.Open(s.opts.StateDB)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: state file: %w", err)
	}
	defer f.Close()
	var st struct {
		Revoked json.RawMessage `json:"revoked"`
		Clock   int64           `json:"clock"`
	}
	dec := json.NewDecoder(&limitedReader{f, maxStateFile})
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("control: state file %s: %w", s.opts.StateDB, err)
	}
	if len(st.Revoked) > 0 {
		s.app.RestoreRevoked(revokedMap(st.Revoked))
	}
	if st.Clock > 0 {
		s.clock.Adjust(st.Clock)
	}
	return nil
}

// saveState writes the state file atomically (a temporary file renamed
// over it).
func (s *Server) saveState() error {
	st := stateFile{Revoked: revokedData(s.app), Clock: s.clock.Value()}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("control: encode state: %w", err)
	}
	dir, base := filepath.Split(s.opts.StateDB)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, base+".tmp*")
	if err != nil {
		return fmt.Errorf("control: state file: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.opts.StateDB)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("control: state file %s: %w", s.opts.StateDB, err)
	}
	return nil
}

type limitedReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("state file larger than %d bytes", maxStateFile)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// mingleTimeout is how long mingle waits for hello replies (Celery: 1s).
const mingleTimeout = time.Second

// mingle is Celery's mingle step: ask the other workers for their
// revoked ids (sending ours) and merge the replies.
func (s *Server) mingle(ctx context.Context) {
	c := NewClient(s.bus, ClientOptions{Clock: s.clock, Logger: s.log})
	defer c.Close()
	replies, err := c.Call(ctx, Call{Method: "hello", Timeout: mingleTimeout,
		Args: map[string]any{"from_node": s.hostname, "revoked": revokedData(s.app)}})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("control: mingle failed", "err", err)
		}
		return
	}
	n := 0
	for _, r := range replies {
		if r.Node == s.hostname {
			continue
		}
		var v struct {
			Revoked json.RawMessage `json:"revoked"`
			Clock   int64           `json:"clock"`
		}
		if json.Unmarshal(r.Value, &v) != nil {
			continue
		}
		n++
		if len(v.Revoked) > 0 {
			s.app.RestoreRevoked(revokedMap(v.Revoked))
		}
		if v.Clock > 0 {
			s.clock.Adjust(v.Clock)
		}
	}
	if n > 0 {
		s.log.Info("mingle: synced with other nodes", "nodes", n)
	}
}
