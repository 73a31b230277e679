package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine/events"
)

// runEvents is `celerity events`: a live view of the workers and tasks
// of a cluster (Go and Python workers alike), or with --dump a line per
// event as `celery events --dump` prints them.
func runEvents(ctx context.Context, args []string, o Options) error {
	fs := newFlags("events", "[flags]", o)
	var rf remoteFlags
	rf.appFlags.register(fs)
	dump := fs.Bool("dump", false, "print every event, one line each (as celery events --dump)")
	asJSON := fs.Bool("json", false, "print every event as a JSON line")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	refresh := fs.Duration("refresh", time.Second, "live view: redraw interval")
	key := fs.String("key", "#", "routing keys to receive: #, worker.#, task.#, ...")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *refresh <= 0 {
		fs.Usage()
		return errUsage
	}
	r, err := rf.open(ctx, o)
	if err != nil {
		return err
	}
	defer r.Close()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	// Events arrive on the bus's goroutine: print or record them there,
	// under one lock with the redraws.
	var mu sync.Mutex
	var state events.State
	names := newNameCache(4096)
	var handle func(events.Event)
	switch {
	case *asJSON:
		handle = func(e events.Event) {
			b, err := json.Marshal(map[string]any(e))
			if err == nil {
				mu.Lock()
				fmt.Fprintf(o.Stdout, "%s\n", b)
				mu.Unlock()
			}
		}
	case *dump:
		fmt.Fprintln(o.Stdout, "-> evdump: starting capture...")
		handle = func(e events.Event) {
			mu.Lock()
			fmt.Fprintln(o.Stdout, dumpLine(e, names))
			mu.Unlock()
		}
	default:
		handle = state.Apply
	}
	l, err := events.Receive(ctx, r.bus, *key, r.app.Config().Logger, handle)
	if err != nil {
		return err
	}
	defer l.Close()
	if *dump || *asJSON {
		<-ctx.Done()
		return nil
	}
	clear := isTerminal(o.Stdout)
	tick := time.NewTicker(*refresh)
	defer tick.Stop()
	var prev events.Snapshot
	prevAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			snap := state.Snapshot()
			mu.Lock()
			renderView(o.Stdout, snap, prev, time.Since(prevAt), false)
			mu.Unlock()
			return nil
		case <-tick.C:
			snap := state.Snapshot()
			mu.Lock()
			renderView(o.Stdout, snap, prev, time.Since(prevAt), clear)
			mu.Unlock()
			prev, prevAt = snap, time.Now()
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// renderView draws the live view: workers, task counts and rates per
// name (over the last interval), events per type, recent failures.
func renderView(w io.Writer, s, prev events.Snapshot, elapsed time.Duration, clear bool) {
	var b strings.Builder
	if clear {
		b.WriteString("\x1b[H\x1b[2J")
	} else {
		b.WriteString("\n")
	}
	now := time.Now()
	fmt.Fprintf(&b, "celerity events — %s — %d events, %d tasks tracked\n\n", now.Format("15:04:05"), s.Events, s.Tasks)
	fmt.Fprintf(&b, "%-32s %-8s %7s %10s %-18s %-22s %s\n", "WORKER", "STATUS", "ACTIVE", "PROCESSED", "LOAD", "SOFTWARE", "LAST SEEN")
	if len(s.Workers) == 0 {
		b.WriteString("(no workers heard from yet: heartbeats come every 2s)\n")
	}
	for _, wk := range s.Workers {
		status := "OFFLINE"
		if wk.Alive(now) {
			status = "ONLINE"
		}
		load := make([]string, len(wk.LoadAvg))
		for i, v := range wk.LoadAvg {
			load[i] = strconv.FormatFloat(v, 'f', 2, 64)
		}
		seen := "-"
		if !wk.LastHeartbeat.IsZero() {
			seen = now.Sub(wk.LastHeartbeat).Truncate(100*time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(&b, "%-32s %-8s %7d %10d %-18s %-22s %s\n", wk.Hostname, status, wk.Active, wk.Processed,
			strings.Join(load, " "), strings.TrimSpace(wk.SWIdent+" "+wk.SWVer), seen)
	}
	names := make([]string, 0, len(s.ByName))
	for n := range s.ByName {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "\n%-40s %9s %9s %7s %7s %7s %9s %10s\n", "TASK", "RECEIVED", "SUCCEEDED", "FAILED", "RETRIED", "REVOKED", "DONE/S", "AVG RUN")
	secs := math.Max(elapsed.Seconds(), 1e-3)
	for _, n := range names {
		c, p := s.ByName[n], prev.ByName[n]
		rate := float64(c.Succeeded+c.Failed-p.Succeeded-p.Failed) / secs
		avg := "-"
		if c.Succeeded > 0 {
			avg = time.Duration(c.Runtime / float64(c.Succeeded) * float64(time.Second)).Round(time.Microsecond).String()
		}
		fmt.Fprintf(&b, "%-40s %9d %9d %7d %7d %7d %9.1f %10s\n", n, c.Received, c.Succeeded, c.Failed, c.Retried, c.Revoked, rate, avg)
	}
	types := make([]string, 0, len(s.ByType))
	for t := range s.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	b.WriteString("\nEVENTS/S ")
	for _, t := range types {
		fmt.Fprintf(&b, " %s=%.1f", t, float64(s.ByType[t]-prev.ByType[t])/secs)
	}
	b.WriteString("\n\nRECENT FAILURES\n")
	if len(s.Failures) == 0 {
		b.WriteString("(none)\n")
	}
	for i := len(s.Failures) - 1; i >= 0; i-- {
		f := s.Failures[i]
		fmt.Fprintf(&b, "%s %s %s[%s] %s\n", f.Done.Local().Format("15:04:05"), f.Worker, f.Name, f.UUID, f.Exception)
	}
	io.WriteString(w, b.String())
}

// nameCache remembers "name(uuid) args=... kwargs=..." of received tasks
// for the later events of the same task, as Celery's dumper does (an LRU
// of 4095; here the oldest entry goes first).
type nameCache struct {
	max   int
	m     map[string]string
	order []string
}

func newNameCache(n int) *nameCache { return &nameCache{max: n, m: map[string]string{}} }

func (c *nameCache) put(k, v string) {
	if _, ok := c.m[k]; !ok {
		if len(c.order) >= c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, k)
	}
	c.m[k] = v
}

var humanTypes = map[string]string{"worker-offline": "shutdown", "worker-online": "started", "worker-heartbeat": "heartbeat"}

// dumpLine formats an event as Celery's Dumper.on_event does:
// "host [utc time] type: task fields".
func dumpLine(e events.Event, names *nameCache) string {
	f := make(map[string]any, len(e))
	for k, v := range e {
		f[k] = v
	}
	ts := e.Timestamp()
	stamp := ts.Format("2006-01-02 15:04:05.000000")
	if ts.Nanosecond()/1000 == 0 {
		stamp = ts.Format("2006-01-02 15:04:05")
	}
	typ := strings.ToLower(e.Type())
	host := e.Hostname()
	delete(f, "timestamp")
	delete(f, "type")
	delete(f, "hostname")
	human, ok := humanTypes[typ]
	if !ok {
		human = strings.ReplaceAll(typ, "-", " ")
	}
	task := ""
	if strings.HasPrefix(typ, "task-") {
		id := pyStr(f["uuid"])
		delete(f, "uuid")
		if typ == "task-received" || typ == "task-sent" {
			task = fmt.Sprintf("%s(%s) args=%s kwargs=%s", pyStr(f["name"]), id, pyStr(f["args"]), pyStr(f["kwargs"]))
			delete(f, "name")
			delete(f, "args")
			delete(f, "kwargs")
			names.put(id, task)
		} else {
			task = names.m[id]
		}
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := make([]string, len(keys))
	for i, k := range keys {
		fields[i] = k + "=" + pyStr(f[k])
	}
	sep := ""
	if len(fields) > 0 {
		sep = ":"
	}
	line := fmt.Sprintf("%s [%s] %s%s", host, stamp, human, sep)
	if task != "" {
		line += " " + task
	}
	return line + " " + strings.Join(fields, ", ")
}

// pyStr formats a decoded JSON value as Python's str() would.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			if s, ok := e.(string); ok {
				parts[i] = "'" + s + "'"
			} else {
				parts[i] = pyStr(e)
			}
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}
