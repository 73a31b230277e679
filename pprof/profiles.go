package pprof

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The profile handlers below follow net/http/pprof (same routes, query
// parameters and headers, so `go tool pprof URL` works unchanged), written
// out here because importing net/http/pprof registers its handlers on
// http.DefaultServeMux.

const prefix = "/debug/pprof/"

// maxProfileSeconds bounds ?seconds= of the CPU profile and the trace.
const maxProfileSeconds = 600

// maxSymbolRequest bounds the body of a symbol lookup.
const maxSymbolRequest = 1 << 20

// descriptions of the profiles the index lists.
var descriptions = map[string]string{
	"allocs":       "A sampling of all past memory allocations",
	"block":        "Stack traces that led to blocking on synchronization primitives",
	"cmdline":      "The command line invocation of the current program",
	"goroutine":    "Stack traces of all current goroutines. Use debug=2 to get the format of an unrecovered panic.",
	"heap":         "A sampling of memory allocations of live objects. gc=1 runs a garbage collection first.",
	"mutex":        "Stack traces of holders of contended mutexes",
	"profile":      "CPU profile for the number of seconds in the seconds parameter (default 30).",
	"symbol":       "Maps program counters (GET raw query or POST body, separated by '+') to function names.",
	"threadcreate": "Stack traces that led to the creation of new OS threads",
	"trace":        "An execution trace for the number of seconds in the seconds parameter (default 1).",
}

// serveIndex serves /debug/pprof/ and the named runtime profiles below it.
func serveIndex(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, prefix)
	if name != "" {
		serveNamed(w, r, name)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	type entry struct {
		name  string
		count int
	}
	var entries []entry
	for _, p := range pprof.Profiles() {
		entries = append(entries, entry{p.Name(), p.Count()})
	}
	for _, n := range []string{"cmdline", "profile", "symbol", "trace"} {
		entries = append(entries, entry{n, -1})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html><head><title>/debug/pprof/</title></head><body>\n")
	b.WriteString("<p>/debug/pprof/</p>\n<table>\n<tr><th>count</th><th>profile</th><th>description</th></tr>\n")
	for _, e := range entries {
		count := ""
		if e.count >= 0 {
			count = strconv.Itoa(e.count)
		}
		href := e.name
		if e.count >= 0 {
			href += "?debug=1"
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td><a href=\"%s\">%s</a></td><td>%s</td></tr>\n",
			count, html.EscapeString(href), html.EscapeString(e.name), html.EscapeString(descriptions[e.name]))
	}
	b.WriteString("</table>\n<p><a href=\"goroutine?debug=2\">full goroutine stack dump</a></p>\n")
	b.WriteString("<p>Metrics in Prometheus format: <a href=\"/metrics\">/metrics</a></p>\n</body></html>\n")
	w.Write(b.Bytes())
}

// serveNamed serves one runtime/pprof profile.
func serveNamed(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	p := pprof.Lookup(name)
	if p == nil {
		serveError(w, http.StatusNotFound, "Unknown profile")
		return
	}
	if r.FormValue("seconds") != "" {
		serveError(w, http.StatusBadRequest, `delta profiles ("seconds") are not served here: take two profiles and use go tool pprof -base`)
		return
	}
	if gc, _ := strconv.Atoi(r.FormValue("gc")); name == "heap" && gc > 0 {
		runtime.GC()
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if debug != 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, name))
	}
	p.WriteTo(w, debug)
}

// serveCmdline answers with the command line, arguments separated by NUL.
func serveCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, strings.Join(os.Args, "\x00"))
}

// seconds reads the seconds parameter: def when absent or not positive,
// ok false when it is beyond maxProfileSeconds.
func seconds(r *http.Request, def float64) (float64, bool) {
	s, err := strconv.ParseFloat(r.FormValue("seconds"), 64)
	if err != nil || s <= 0 {
		s = def
	}
	return s, s <= maxProfileSeconds
}

// extendWriteDeadline gives a response that records for d the server's
// write timeout on top of d.
func extendWriteDeadline(w http.ResponseWriter, r *http.Request, d time.Duration) {
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.WriteTimeout > 0 {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(srv.WriteTimeout + d))
	}
}

// sleep waits d or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// serveCPU records a CPU profile.
func serveCPU(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	sec, ok := seconds(r, 30)
	if !ok {
		serveError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be at most %d", maxProfileSeconds))
		return
	}
	d := time.Duration(sec * float64(time.Second))
	extendWriteDeadline(w, r, d)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		serveError(w, http.StatusInternalServerError, "Could not enable CPU profiling: "+err.Error())
		return
	}
	sleep(r, d)
	pprof.StopCPUProfile()
}

// serveTrace records an execution trace.
func serveTrace(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	sec, ok := seconds(r, 1)
	if !ok {
		serveError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be at most %d", maxProfileSeconds))
		return
	}
	d := time.Duration(sec * float64(time.Second))
	extendWriteDeadline(w, r, d)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if err := trace.Start(w); err != nil {
		serveError(w, http.StatusInternalServerError, "Could not enable tracing: "+err.Error())
		return
	}
	sleep(r, d)
	trace.Stop()
}

// serveSymbol maps program counters to function names.
func serveSymbol(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var buf bytes.Buffer
	// pprof only checks whether this number is 0.
	buf.WriteString("num_symbols: 1\n")
	var in *bufio.Reader
	if r.Method == http.MethodPost {
		in = bufio.NewReader(http.MaxBytesReader(w, r.Body, maxSymbolRequest))
	} else {
		in = bufio.NewReader(strings.NewReader(r.URL.RawQuery))
	}
	for {
		word, err := in.ReadSlice('+')
		if err == nil {
			word = word[:len(word)-1]
		}
		if pc, _ := strconv.ParseUint(string(word), 0, 64); pc != 0 {
			if f := runtime.FuncForPC(uintptr(pc)); f != nil {
				fmt.Fprintf(&buf, "%#x %s\n", pc, f.Name())
			}
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(&buf, "reading request: %v\n", err)
			}
			break
		}
	}
	w.Write(buf.Bytes())
}

// serveError answers with a plain-text error.
func serveError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Go-Pprof", "1")
	h.Del("Content-Disposition")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}
