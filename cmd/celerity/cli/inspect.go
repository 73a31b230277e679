package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
)

// remoteArg is one positional argument of a remote-control verb, as
// Celery's Panel.meta declares it: a name and a type ('s' string, 'i'
// int, 'f' float, 'b' boolean).
type remoteArg struct {
	name string
	typ  byte
}

// remoteVerb is a command `celerity inspect` or `celerity control` knows,
// with Celery's argument signature (celery/worker/control.py).
type remoteVerb struct {
	name     string
	kind     control.Kind
	args     []remoteArg
	variadic string // name of the list taking the remaining arguments
	usage    string
}

var remoteVerbs = []remoteVerb{
	{name: "active", kind: control.KindInspect, usage: "tasks being run"},
	{name: "active_queues", kind: control.KindInspect, usage: "queues consumed"},
	{name: "clock", kind: control.KindInspect, usage: "the Lamport clock"},
	{name: "conf", kind: control.KindInspect, args: []remoteArg{{"with_defaults", 'b'}}, usage: "[include_defaults=False]: configuration"},
	{name: "ping", kind: control.KindInspect, usage: "answer pong"},
	{name: "query_task", kind: control.KindInspect, variadic: "ids", usage: "[id1 [id2 ...]]: state of tasks by id"},
	{name: "registered", kind: control.KindInspect, variadic: "taskinfoitems", usage: "[attr1 [attr2 ...]]: registered tasks"},
	{name: "report", kind: control.KindInspect, usage: "software and settings"},
	{name: "reserved", kind: control.KindInspect, usage: "tasks fetched, waiting to run"},
	{name: "revoked", kind: control.KindInspect, usage: "revoked task ids"},
	{name: "scheduled", kind: control.KindInspect, usage: "tasks waiting for their ETA"},
	{name: "stats", kind: control.KindInspect, usage: "worker statistics"},
	{name: "add_consumer", kind: control.KindControl, args: []remoteArg{{"queue", 's'}, {"exchange", 's'}, {"exchange_type", 's'}, {"routing_key", 's'}},
		usage: "<queue> [exchange [type [routing_key]]]: consume another queue"},
	{name: "autoscale", kind: control.KindControl, args: []remoteArg{{"max", 'i'}, {"min", 'i'}}, usage: "[max [min]]: pool size range"},
	{name: "cancel_consumer", kind: control.KindControl, args: []remoteArg{{"queue", 's'}}, usage: "<queue>: stop consuming a queue"},
	{name: "disable_events", kind: control.KindControl, usage: "stop sending task events"},
	{name: "enable_events", kind: control.KindControl, usage: "send task events"},
	{name: "heartbeat", kind: control.KindControl, usage: "send a heartbeat event now"},
	{name: "pool_grow", kind: control.KindControl, args: []remoteArg{{"n", 'i'}}, usage: "[N=1]: add pool executors"},
	{name: "pool_shrink", kind: control.KindControl, args: []remoteArg{{"n", 'i'}}, usage: "[N=1]: remove pool executors"},
	{name: "rate_limit", kind: control.KindControl, args: []remoteArg{{"task_name", 's'}, {"rate_limit", 's'}},
		usage: "<task_name> <rate_limit (e.g. 5/s | 5/m | 5/h)>"},
	{name: "revoke", kind: control.KindControl, variadic: "task_id", usage: "[id1 [id2 ...]]: revoke tasks"},
	{name: "shutdown", kind: control.KindControl, usage: "warm shutdown"},
	{name: "terminate", kind: control.KindControl, args: []remoteArg{{"signal", 's'}}, variadic: "task_id",
		usage: "<signal> [id1 [id2 ...]]: revoke and cancel running tasks"},
	{name: "time_limit", kind: control.KindControl, args: []remoteArg{{"task_name", 's'}, {"soft", 'f'}, {"hard", 'f'}},
		usage: "<task_name> <soft_secs> [hard_secs]"},
}

func findVerb(name string, kind control.Kind) (remoteVerb, bool) {
	for _, v := range remoteVerbs {
		if v.name == name && v.kind == kind {
			return v, true
		}
	}
	return remoteVerb{}, false
}

// compileArgs turns positional arguments into the command's arguments
// object, as Celery's CLI does (_compile_arguments).
func compileArgs(v remoteVerb, pos []string) (map[string]any, error) {
	out := map[string]any{}
	i := 0
	for ; i < len(pos); i++ {
		if i >= len(v.args) {
			if v.variadic != "" {
				break
			}
			return nil, fmt.Errorf("command %q takes arguments: %s", v.name, v.usage)
		}
		a := v.args[i]
		switch a.typ {
		case 'i':
			n, err := strconv.Atoi(pos[i])
			if err != nil {
				return nil, fmt.Errorf("%s: %s is not an integer", a.name, pos[i])
			}
			out[a.name] = n
		case 'f':
			f, err := strconv.ParseFloat(pos[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s is not a number", a.name, pos[i])
			}
			out[a.name] = f
		case 'b':
			switch strings.ToLower(pos[i]) {
			case "1", "true", "yes", "on", "y":
				out[a.name] = true
			case "0", "false", "no", "off", "n":
				out[a.name] = false
			default:
				return nil, fmt.Errorf("%s: %s is not a boolean", a.name, pos[i])
			}
		default:
			out[a.name] = pos[i]
		}
	}
	if v.variadic != "" {
		rest := pos[i:]
		if rest == nil {
			rest = []string{}
		}
		out[v.variadic] = rest
	}
	return out, nil
}

// remoteFlags are the flags of inspect, control and status.
type remoteFlags struct {
	appFlags
	timeout          float64
	destination      string
	pattern, matcher string
	json             bool
	rawArgs          string
}

func (f *remoteFlags) register(fs *flag.FlagSet, withArgs bool) {
	f.appFlags.register(fs)
	fs.Float64Var(&f.timeout, "timeout", 1.0, "seconds to wait for the next reply")
	fs.Float64Var(&f.timeout, "t", 1.0, "short for --timeout")
	fs.StringVar(&f.destination, "destination", "", "comma-separated node names (default: every worker)")
	fs.StringVar(&f.destination, "d", "", "short for --destination")
	fs.StringVar(&f.pattern, "pattern", "", "select nodes whose name matches this pattern instead")
	fs.StringVar(&f.matcher, "matcher", "glob", "how --pattern matches: glob or pcre")
	fs.BoolVar(&f.json, "json", false, "print the replies as JSON")
	fs.BoolVar(&f.json, "j", false, "short for --json")
	if withArgs {
		fs.StringVar(&f.rawArgs, "args", "", "the command's arguments as a JSON object (for commands this CLI does not know)")
	}
}

func (f *remoteFlags) call(method string, args any) control.Call {
	c := control.Call{Method: method, Args: args, Timeout: time.Duration(f.timeout * float64(time.Second))}
	if f.destination != "" {
		c.Destination = strings.Split(f.destination, ",")
	}
	if f.pattern != "" {
		c.Pattern, c.Matcher = f.pattern, f.matcher
	}
	return c
}

// parseInterspersed parses flags anywhere among the positional arguments
// (`inspect active -d w1@h -t 5`, as Celery's CLI accepts).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// remote is an open bus and client for the CLI's remote-control commands.
type remote struct {
	app    *engine.App
	bus    control.Bus
	client *control.Client
}

func (f *remoteFlags) open(ctx context.Context, o Options) (*remote, error) {
	app, err := f.newApp(o, nil)
	if err != nil {
		return nil, err
	}
	cfg := app.Config()
	bus, err := control.Open(ctx, app.Broker(), cfg.BrokerURL, control.WithLogger(cfg.Logger))
	if err != nil {
		app.Close()
		if errors.Is(err, control.ErrUnsupported) {
			return nil, errNoBus
		}
		return nil, err
	}
	return &remote{app: app, bus: bus, client: control.NewClient(bus, control.ClientOptions{Logger: cfg.Logger})}, nil
}

func (r *remote) Close() {
	r.client.Close()
	r.bus.Close()
	r.app.Close()
}

func verbList(kind control.Kind) string {
	var b strings.Builder
	for _, v := range remoteVerbs {
		if v.kind == kind {
			fmt.Fprintf(&b, "  %-16s %s\n", v.name, v.usage)
		}
	}
	return b.String()
}

func runInspect(ctx context.Context, args []string, o Options) error {
	return runRemote(ctx, args, o, control.KindInspect)
}

// runRemote is `celerity inspect` and `celerity control`.
func runRemote(ctx context.Context, args []string, o Options, kind control.Kind) error {
	name := kind.String()
	fs := newFlags(name, "<command> [arguments] [flags]", o)
	var rf remoteFlags
	rf.register(fs, true)
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprintf(o.Stderr, "\ncommands (Celery's; workers may know more, sent with --args):\n%s", verbList(kind))
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return errUsage
	}
	method := pos[0]
	var cmdArgs any
	switch v, known := findVerb(method, kind); {
	case rf.rawArgs != "":
		var m map[string]any
		if err := decodeJSONArg(rf.rawArgs, &m); err != nil {
			return fmt.Errorf("--args: %w", err)
		}
		cmdArgs = m
	case known:
		if cmdArgs, err = compileArgs(v, pos[1:]); err != nil {
			fmt.Fprintf(o.Stderr, "celerity %s: %v\n", name, err)
			return errUsage
		}
	case len(pos) > 1:
		fmt.Fprintf(o.Stderr, "celerity %s: unknown command %q: give its arguments with --args '{...}'\n", name, method)
		return errUsage
	}
	r, err := rf.open(ctx, o)
	if err != nil {
		return err
	}
	defer r.Close()
	call := rf.call(method, cmdArgs)
	if !rf.json {
		call.OnReply = func(rep control.Reply) { sayReply(o.Stdout, rep, true) }
	}
	replies, err := r.client.Call(ctx, call)
	if err != nil {
		return err
	}
	if len(replies) == 0 {
		return control.ErrNoReply
	}
	if rf.json {
		return printJSONReplies(o.Stdout, replies, kind == control.KindControl)
	}
	fmt.Fprintf(o.Stdout, "\n%s online.\n", nodes(len(replies)))
	return nil
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return strconv.Itoa(n) + " nodes"
}

// printJSONReplies prints what Celery's -j prints: {node: reply} for
// inspect, [{node: reply}, ...] for control.
func printJSONReplies(w io.Writer, replies []control.Reply, list bool) error {
	var out []byte
	var err error
	if list {
		l := make([]map[string]json.RawMessage, len(replies))
		for i, r := range replies {
			l[i] = map[string]json.RawMessage{r.Node: r.Value}
		}
		out, err = json.Marshal(l)
	} else {
		m := make(map[string]json.RawMessage, len(replies))
		for _, r := range replies {
			m[r.Node] = r.Value
		}
		out, err = json.Marshal(m)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}

// sayReply prints one reply as Celery's CLI does: "->  node: OK" and,
// with body, the reply indented.
func sayReply(w io.Writer, r control.Reply, body bool) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(r.Value)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		v = string(r.Value)
	}
	status, text := pretty(v)
	fmt.Fprintf(w, "->  %s: %s\n", r.Node, status)
	if body && text != "" {
		fmt.Fprintln(w, indent(text, 4))
	}
}

// pretty is Celery's CLI pretty(): a status and a text for a reply value.
func pretty(v any) (status, text string) {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return "OK", "- empty -"
		}
		lines := make([]string, len(x))
		for i, item := range x {
			if s, ok := item.(string); ok {
				lines[i] = "* " + s
			} else {
				b, _ := json.Marshal(item)
				lines[i] = "* " + string(b)
			}
		}
		return "OK", strings.Join(lines, "\n")
	case map[string]any:
		if ok, has := x["ok"]; has {
			_, t := pretty(ok)
			return "OK", indent(t, 4)
		}
		if e, has := x["error"]; has {
			_, t := pretty(e)
			return "ERROR", indent(t, 4)
		}
		return "OK", indentJSON(x)
	case string:
		return "OK", x
	case nil:
		return "OK", "None"
	}
	b, _ := json.Marshal(v)
	return "OK", string(b)
}

// indentJSON renders v with sorted keys and 4-space indentation.
func indentJSON(v any) string {
	b, err := json.MarshalIndent(sortedKeys(v), "", "    ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// sortedKeys returns v with its maps' keys in order (goccy/go-json keeps
// map order unspecified unless asked).
func sortedKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make(orderedMap, len(keys))
		for i, k := range keys {
			out[i] = kv{k, sortedKeys(x[k])}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sortedKeys(e)
		}
		return out
	}
	return v
}

type kv struct {
	k string
	v any
}

// orderedMap encodes as a JSON object with its keys in slice order.
type orderedMap []kv

func (m orderedMap) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, e := range m {
		if i > 0 {
			b = append(b, ',')
		}
		b = control.AppendString(b, e.k)
		b = append(b, ':')
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}

// errNoBus explains why a memory broker cannot be inspected.
var errNoBus = errors.New("remote control and events need a Redis or RabbitMQ broker (--broker)")
