package control

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
)

// builtins are Celery's worker commands (celery/worker/control.py) that a
// celerity worker answers, under their names and aliases.
var builtins = map[string]commandDef{}

func init() {
	for _, c := range []struct {
		names []string
		kind  Kind
		fn    Command
	}{
		{[]string{"ping"}, KindInspect, cmdPing},
		{[]string{"active", "dump_active"}, KindInspect, cmdActive},
		{[]string{"reserved", "dump_reserved"}, KindInspect, cmdReserved},
		{[]string{"scheduled", "dump_schedule"}, KindInspect, cmdScheduled},
		{[]string{"registered", "dump_tasks"}, KindInspect, cmdRegistered},
		{[]string{"stats"}, KindInspect, cmdStats},
		{[]string{"revoked", "dump_revoked"}, KindInspect, cmdRevoked},
		{[]string{"active_queues"}, KindInspect, cmdActiveQueues},
		{[]string{"query_task"}, KindInspect, cmdQueryTask},
		{[]string{"conf", "dump_conf"}, KindInspect, cmdConf},
		{[]string{"clock"}, KindInspect, cmdClock},
		{[]string{"report"}, KindInspect, cmdReport},
		{[]string{"hello"}, KindInspect, cmdHello},
		{[]string{"revoke"}, KindControl, cmdRevoke},
		{[]string{"terminate"}, KindControl, cmdTerminate},
		{[]string{"rate_limit"}, KindControl, cmdRateLimit},
		{[]string{"time_limit"}, KindControl, cmdTimeLimit},
		{[]string{"pool_grow"}, KindControl, cmdPoolGrow},
		{[]string{"pool_shrink"}, KindControl, cmdPoolShrink},
		{[]string{"autoscale"}, KindControl, cmdAutoscale},
		{[]string{"enable_events"}, KindControl, cmdEnableEvents},
		{[]string{"disable_events"}, KindControl, cmdDisableEvents},
		{[]string{"heartbeat"}, KindControl, cmdHeartbeat},
		{[]string{"shutdown"}, KindControl, cmdShutdown},
		{[]string{"add_consumer"}, KindControl, cmdAddConsumer},
		{[]string{"cancel_consumer"}, KindControl, cmdCancelConsumer},
	} {
		for _, n := range c.names {
			builtins[n] = commandDef{c.kind, c.fn}
		}
	}
}

var pid = os.Getpid()

// pyFloat is a float64 written as Python writes floats (always with a
// fraction), so that Python reads it back as a float.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) { return AppendFloat(nil, float64(f)), nil }

func unixFloat(t time.Time) pyFloat { return pyFloat(float64(t.UnixNano()) / 1e9) }

// ids reads a task id argument: one string or a list of strings.
func ids(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil
		}
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

func cmdPing(context.Context, *Request) (any, error) { return OK("pong"), nil }

func cmdClock(_ context.Context, r *Request) (any, error) {
	return map[string]any{"clock": r.Server.clock.Value()}, nil
}

// requestInfo is Celery's Request.info() (celery/worker/request.py).
type requestInfo struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Args         json.RawMessage `json:"args"`
	Kwargs       json.RawMessage `json:"kwargs"`
	Type         string          `json:"type"`
	Hostname     string          `json:"hostname"`
	TimeStart    *pyFloat        `json:"time_start"`
	Acknowledged bool            `json:"acknowledged"`
	DeliveryInfo deliveryInfo    `json:"delivery_info"`
	WorkerPID    *int            `json:"worker_pid"`
}

type deliveryInfo struct {
	Exchange    string `json:"exchange"`
	RoutingKey  string `json:"routing_key"`
	Priority    int    `json:"priority"`
	Redelivered bool   `json:"redelivered"`
}

// info renders t as Celery does. Arguments are the decoded values when
// the engine has them (running tasks) and safe is false; otherwise their
// repr strings, as Celery's safe mode gives.
func info(t *engine.TaskInfo, safe, running bool) requestInfo {
	str := func(s string) json.RawMessage { return AppendString(nil, s) }
	ri := requestInfo{ID: t.ID, Name: t.Name, Type: t.Name, Hostname: t.Hostname,
		Args: str(t.ArgsRepr), Kwargs: str(t.KwargsRepr), Acknowledged: t.Acknowledged,
		DeliveryInfo: deliveryInfo{Exchange: t.Exchange, RoutingKey: t.RoutingKey, Priority: t.Priority, Redelivered: t.Redelivered}}
	if !safe && len(t.Args) > 0 {
		ri.Args = t.Args
	}
	if !safe && len(t.Kwargs) > 0 {
		ri.Kwargs = t.Kwargs
	}
	if !t.TimeStart.IsZero() {
		ts := unixFloat(t.TimeStart)
		ri.TimeStart = &ts
	}
	if running {
		p := pid
		ri.WorkerPID = &p
	}
	return ri
}

func cmdActive(_ context.Context, r *Request) (any, error) {
	var a struct {
		Safe *bool `json:"safe"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	safe := a.Safe != nil && *a.Safe
	tasks := r.Worker.Active()
	out := make([]requestInfo, 0, len(tasks))
	for i := range tasks {
		out = append(out, info(&tasks[i], safe, true))
	}
	return out, nil
}

func cmdReserved(_ context.Context, r *Request) (any, error) {
	tasks := r.Worker.Reserved()
	out := make([]requestInfo, 0, len(tasks))
	for i := range tasks {
		out = append(out, info(&tasks[i], false, false))
	}
	return out, nil
}

type scheduledInfo struct {
	ETA      *string     `json:"eta"`
	Priority int         `json:"priority"`
	Request  requestInfo `json:"request"`
}

// etaTimerPriority is the "priority" Celery's scheduled reply gives every
// task: its ETA timer entry's (strategy.py calls call_at with
// priority=6), not the message's, which delivery_info carries.
const etaTimerPriority = 6

func cmdScheduled(_ context.Context, r *Request) (any, error) {
	tasks := r.Worker.Scheduled()
	out := make([]scheduledInfo, 0, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		si := scheduledInfo{Priority: etaTimerPriority, Request: info(t, false, false)}
		if !t.ETA.IsZero() {
			eta := string(codec.AppendISOTime(nil, t.ETA))
			si.ETA = &eta
		}
		out = append(out, si)
	}
	return out, nil
}

func cmdRegistered(_ context.Context, r *Request) (any, error) {
	var a struct {
		Items    []string `json:"taskinfoitems"`
		Builtins bool     `json:"builtins"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	app := r.Worker.App()
	names := app.Registered()
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !a.Builtins && strings.HasPrefix(n, "celery.") {
			continue
		}
		var fields []string
		for _, item := range a.Items {
			var v string
			switch item {
			case "rate_limit":
				v = app.RateLimit(n)
			case "time_limit", "soft_time_limit":
				hard, soft, _ := app.TimeLimits(n)
				d := hard
				if item == "soft_time_limit" {
					d = soft
				}
				if d > 0 {
					v = strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
				}
			}
			if v != "" {
				fields = append(fields, item+"="+v)
			}
		}
		if len(fields) > 0 {
			n = n + " [" + strings.Join(fields, " ") + "]"
		}
		out = append(out, n)
	}
	return out, nil
}

func cmdRevoked(_ context.Context, r *Request) (any, error) {
	out := r.Worker.Revoked()
	sort.Strings(out)
	return out, nil
}

// kombuExchange and kombuQueue are kombu's Queue.as_dict(recurse=True),
// in its key order.
type kombuExchange struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	Arguments    any    `json:"arguments"`
	Durable      bool   `json:"durable"`
	Passive      bool   `json:"passive"`
	AutoDelete   bool   `json:"auto_delete"`
	DeliveryMode any    `json:"delivery_mode"`
	NoDeclare    bool   `json:"no_declare"`
}

type kombuQueue struct {
	Name              string        `json:"name"`
	Exchange          kombuExchange `json:"exchange"`
	RoutingKey        string        `json:"routing_key"`
	QueueArguments    any           `json:"queue_arguments"`
	BindingArguments  any           `json:"binding_arguments"`
	ConsumerArguments any           `json:"consumer_arguments"`
	Durable           bool          `json:"durable"`
	Exclusive         bool          `json:"exclusive"`
	AutoDelete        bool          `json:"auto_delete"`
	NoAck             bool          `json:"no_ack"`
	Alias             any           `json:"alias"`
	Bindings          []any         `json:"bindings"`
	NoDeclare         any           `json:"no_declare"`
	Expires           any           `json:"expires"`
	MessageTTL        any           `json:"message_ttl"`
	MaxLength         any           `json:"max_length"`
	MaxLengthBytes    any           `json:"max_length_bytes"`
	MaxPriority       any           `json:"max_priority"`
}

func cmdActiveQueues(_ context.Context, r *Request) (any, error) {
	qs := r.Worker.Queues()
	out := make([]kombuQueue, 0, len(qs))
	for _, q := range qs {
		out = append(out, kombuQueue{Name: q, RoutingKey: q, Durable: true, Bindings: []any{},
			Exchange: kombuExchange{Name: q, Type: "direct", Durable: true}})
	}
	return out, nil
}

func cmdQueryTask(_ context.Context, r *Request) (any, error) {
	var a struct {
		IDs json.RawMessage `json:"ids"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	want := ids(a.IDs)
	out := map[string][2]any{}
	find := func(tasks []engine.TaskInfo, state string, running bool) {
		for i := range tasks {
			if slices.Contains(want, tasks[i].ID) {
				if _, seen := out[tasks[i].ID]; !seen {
					out[tasks[i].ID] = [2]any{state, info(&tasks[i], false, running)}
				}
			}
		}
	}
	// Not the tasks waiting for their ETA: Celery reserves a task (and
	// query_task finds it) only once its ETA comes.
	find(r.Worker.Active(), "active", true)
	find(r.Worker.Reserved(), "reserved", false)
	return out, nil
}

// cmdConf lists the configuration under Celery's setting names
// (durations in seconds, passwords in URLs masked). Without
// with_defaults only settings that are not empty or zero are listed.
func cmdConf(_ context.Context, r *Request) (any, error) {
	var a struct {
		WithDefaults any `json:"with_defaults"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	all := false
	switch v := a.WithDefaults.(type) {
	case bool:
		all = v
	case string:
		all, _ = strconv.ParseBool(v)
	}
	cfg := r.Worker.App().Config()
	v := reflect.ValueOf(cfg)
	out := map[string]any{}
	for _, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("celery")
		if name == "" || name == "-" {
			continue
		}
		fv := v.FieldByIndex(f.Index)
		if !all && fv.IsZero() {
			continue
		}
		switch x := fv.Interface().(type) {
		case time.Duration:
			out[name] = pyFloat(x.Seconds())
		case string:
			if strings.Contains(x, "://") {
				x = redact(x)
			}
			out[name] = x
		default:
			out[name] = x
		}
	}
	return out, nil
}

// Version returns the celerity version recorded in the binary's build
// information ("devel" when there is none); events and stats report it
// as sw_ver.
func Version() string {
	versionOnce.Do(func() {
		version = "devel"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if bi.Main.Path == "github.com/celerity-go/celerity" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/celerity-go/celerity" {
				version = d.Version
			}
		}
	})
	return version
}

var (
	versionOnce sync.Once
	version     string
)

func cmdReport(_ context.Context, r *Request) (any, error) {
	cfg := r.Worker.App().Config()
	return OK(fmt.Sprintf("software -> celerity:%s (%s)\nplatform -> system:%s arch:%s\nsettings -> transport:%s results:%s\n",
		Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH, redact(cfg.BrokerURL), redact(cfg.ResultBackend))), nil
}

// revokedMap reads a hello revoked argument: Celery's LimitedSet data
// ({id: timestamp}, where a value may also be [timestamp, ...]) or a list
// of ids (revoked now).
func revokedMap(raw json.RawMessage) map[string]time.Time {
	out := map[string]time.Time{}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		for id, v := range m {
			if l, ok := v.([]any); ok && len(l) > 0 {
				v = l[0]
			}
			if f, ok := number(v); ok {
				out[id] = time.Unix(0, int64(f*1e9))
			}
		}
		return out
	}
	var l []string
	if json.Unmarshal(raw, &l) == nil {
		now := time.Now()
		for _, id := range l {
			out[id] = now
		}
	}
	return out
}

func revokedData(app *engine.App) map[string]pyFloat {
	at := app.RevokedAt()
	out := make(map[string]pyFloat, len(at))
	for id, t := range at {
		out[id] = unixFloat(t)
	}
	return out
}

// cmdHello is mingle's sync request: merge the sender's revoked ids and
// send ours, with the clock; a worker does not answer itself (null).
func cmdHello(_ context.Context, r *Request) (any, error) {
	var a struct {
		FromNode string          `json:"from_node"`
		Revoked  json.RawMessage `json:"revoked"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	if a.FromNode == r.Server.hostname {
		return nil, nil
	}
	app := r.Worker.App()
	if len(a.Revoked) > 0 {
		app.RestoreRevoked(revokedMap(a.Revoked))
	}
	return map[string]any{"revoked": revokedData(app), "clock": r.Server.clock.Forward()}, nil
}

func cmdRevoke(_ context.Context, r *Request) (any, error) {
	var a struct {
		TaskID    json.RawMessage `json:"task_id"`
		Terminate bool            `json:"terminate"`
		Signal    string          `json:"signal"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	return revoke(r, ids(a.TaskID), a.Terminate), nil
}

func cmdTerminate(_ context.Context, r *Request) (any, error) {
	var a struct {
		TaskID json.RawMessage `json:"task_id"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	return revoke(r, ids(a.TaskID), true), nil
}

// revoke is Celery's revoke command: flag ids as revoked and, with
// terminate, cancel the contexts of those running here (the signal name
// is accepted and ignored: a goroutine cannot be signalled).
func revoke(r *Request, list []string, terminate bool) map[string]any {
	var running []string
	if terminate {
		for _, t := range r.Worker.Active() {
			if slices.Contains(list, t.ID) && !slices.Contains(running, t.ID) {
				running = append(running, t.ID)
			}
		}
	}
	r.Worker.App().Revoke(terminate, list...)
	r.Server.log.Info("tasks flagged as revoked", "ids", list, "terminate", terminate)
	if terminate {
		if len(running) == 0 {
			return OK("terminate: tasks unknown")
		}
		return OK("terminate: " + strings.Join(running, ", "))
	}
	return OK("tasks " + strings.Join(list, ", ") + " flagged as revoked")
}

func cmdRateLimit(_ context.Context, r *Request) (any, error) {
	var a struct {
		TaskName  string `json:"task_name"`
		RateLimit any    `json:"rate_limit"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	rate := ""
	switch v := a.RateLimit.(type) {
	case string:
		rate = v
	case float64:
		rate = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if !slices.Contains(r.Worker.App().Registered(), a.TaskName) {
		return map[string]any{"error": "unknown task"}, nil
	}
	if err := r.Worker.SetRateLimit(a.TaskName, rate); err != nil {
		return map[string]any{"error": fmt.Sprintf("Invalid rate limit string: %v", err)}, nil
	}
	if rate == "" || rate == "0" {
		return OK("rate limit disabled successfully"), nil
	}
	return OK("new rate limit set successfully"), nil
}

func seconds(v *float64) time.Duration {
	if v == nil || *v <= 0 {
		return 0
	}
	return time.Duration(*v * float64(time.Second))
}

func cmdTimeLimit(_ context.Context, r *Request) (any, error) {
	var a struct {
		TaskName string   `json:"task_name"`
		Soft     *float64 `json:"soft"`
		Hard     *float64 `json:"hard"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	if err := r.Worker.App().SetTimeLimit(a.TaskName, seconds(a.Hard), seconds(a.Soft)); err != nil {
		if errors.Is(err, engine.ErrNotRegistered) {
			return map[string]any{"error": "unknown task"}, nil
		}
		return nil, err
	}
	return OK("time limits set successfully"), nil
}

func poolArg(r *Request) (int, error) {
	var a struct {
		N *int `json:"n"`
	}
	if err := r.Decode(&a); err != nil {
		return 0, err
	}
	if a.N == nil {
		return 1, nil
	}
	return *a.N, nil
}

var errAutoscaling = errors.New("pool_grow and pool_shrink are not supported with autoscale; adjust the autoscale range instead")

func cmdPoolGrow(_ context.Context, r *Request) (any, error) {
	if r.Server.opts.Autoscale != nil {
		return nil, errAutoscaling
	}
	n, err := poolArg(r)
	if err != nil {
		return nil, err
	}
	if err := r.Worker.ResizePool(r.Worker.PoolSize() + n); err != nil {
		return nil, err
	}
	return OK("pool will grow"), nil
}

func cmdPoolShrink(_ context.Context, r *Request) (any, error) {
	if r.Server.opts.Autoscale != nil {
		return nil, errAutoscaling
	}
	n, err := poolArg(r)
	if err != nil {
		return nil, err
	}
	size := r.Worker.PoolSize() - n
	if size < 1 {
		return nil, fmt.Errorf("cannot shrink the pool below one executor (size %d)", r.Worker.PoolSize())
	}
	if err := r.Worker.ResizePool(size); err != nil {
		return nil, err
	}
	return OK("pool will shrink"), nil
}

// errNoAutoscaler is Celery's reply to autoscale from a worker started
// without --autoscale: the repr of the ValueError its handler raises.
var errNoAutoscaler = errors.New("ValueError('Autoscale not enabled')")

// cmdAutoscale updates the worker's autoscaler (ServerOptions.Autoscale);
// a worker without one replies an error and keeps its pool, as Celery's.
func cmdAutoscale(_ context.Context, r *Request) (any, error) {
	var a struct {
		Max *int `json:"max"`
		Min *int `json:"min"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	maxN := r.Worker.PoolSize()
	if a.Max != nil {
		maxN = *a.Max
	}
	minN := maxN
	if a.Min != nil {
		minN = *a.Min
	}
	f := r.Server.opts.Autoscale
	if f == nil {
		return nil, errNoAutoscaler
	}
	if maxN < 1 || minN > maxN {
		return nil, fmt.Errorf("autoscale: bad range max=%d min=%d", maxN, minN)
	}
	hi, lo, err := f(maxN, minN)
	if err != nil {
		return nil, err
	}
	r.Server.scaleMin.Store(int64(lo))
	return OK(fmt.Sprintf("autoscale now max=%d min=%d", hi, lo)), nil
}

var errNoEvents = errors.New("this worker has no event dispatcher")

func cmdEnableEvents(_ context.Context, r *Request) (any, error) {
	ev := r.Server.opts.Events
	if ev == nil {
		return nil, errNoEvents
	}
	if ev.EnableTaskEvents() {
		return OK("task events enabled"), nil
	}
	return OK("task events already enabled"), nil
}

func cmdDisableEvents(_ context.Context, r *Request) (any, error) {
	ev := r.Server.opts.Events
	if ev == nil {
		return nil, errNoEvents
	}
	if ev.DisableTaskEvents() {
		return OK("task events disabled"), nil
	}
	return OK("task events already disabled"), nil
}

func cmdHeartbeat(_ context.Context, r *Request) (any, error) {
	ev := r.Server.opts.Events
	if ev == nil {
		return nil, errNoEvents
	}
	ev.SendHeartbeat()
	return nil, nil
}

// cmdShutdown starts the worker's warm shutdown; like Celery it sends no
// reply.
func cmdShutdown(_ context.Context, r *Request) (any, error) {
	r.Server.log.Warn("Got shutdown from remote", "hostname", r.Server.hostname)
	r.Worker.Stop()
	return nil, errNoReply
}

// queueChangeTimeout bounds how long add_consumer and cancel_consumer wait
// for the consumer to apply the change (commands are answered in order).
const queueChangeTimeout = 5 * time.Second

// cmdAddConsumer is Celery's add_consumer. A celerity worker consumes task
// queues as Celery declares them by default: bound to a direct exchange of
// the queue's name with the queue's name as routing key; other exchange,
// exchange_type or routing_key arguments are refused, not ignored.
func cmdAddConsumer(ctx context.Context, r *Request) (any, error) {
	var a struct {
		Queue        string  `json:"queue"`
		Exchange     *string `json:"exchange"`
		ExchangeType *string `json:"exchange_type"`
		RoutingKey   *string `json:"routing_key"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	if a.Queue == "" {
		return nil, errors.New("add_consumer: missing queue")
	}
	for _, o := range []struct {
		name    string
		v       *string
		allowed string
	}{{"exchange", a.Exchange, a.Queue}, {"exchange_type", a.ExchangeType, "direct"}, {"routing_key", a.RoutingKey, a.Queue}} {
		if o.v != nil && *o.v != "" && *o.v != o.allowed {
			return nil, fmt.Errorf("add_consumer: %s %q is not supported: celerity consumes a queue bound to the direct exchange of its name with its name as routing key", o.name, *o.v)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, queueChangeTimeout)
	defer cancel()
	if err := r.Worker.AddQueue(ctx, a.Queue); err != nil {
		return nil, err
	}
	return OK("add consumer " + a.Queue), nil
}

// cmdCancelConsumer is Celery's cancel_consumer: tasks already received
// from the queue still run.
func cmdCancelConsumer(ctx context.Context, r *Request) (any, error) {
	var a struct {
		Queue string `json:"queue"`
	}
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	if a.Queue == "" {
		return nil, errors.New("cancel_consumer: missing queue")
	}
	ctx, cancel := context.WithTimeout(ctx, queueChangeTimeout)
	defer cancel()
	if err := r.Worker.CancelQueue(ctx, a.Queue); err != nil {
		return nil, err
	}
	return OK("no longer consuming from " + a.Queue), nil
}

// stats is Celery's stats reply (celery.worker.WorkController.stats).
func cmdStats(_ context.Context, r *Request) (any, error) {
	w := r.Worker
	cfg := w.Config()
	app := w.App()
	pool := map[string]any{
		"max-concurrency":          w.PoolSize(),
		"processes":                []int{pid},
		"max-tasks-per-child":      nil,
		"put-guarded-by-semaphore": false,
		"timeouts":                 []any{},
		"implementation":           "celerity:" + cfg.Pool,
	}
	if cfg.MaxTasksPerChild > 0 {
		pool["max-tasks-per-child"] = cfg.MaxTasksPerChild
	}
	if ac := app.Config(); ac.TaskTimeLimit > 0 || ac.TaskSoftTimeLimit > 0 {
		pool["timeouts"] = []any{pyFloat(ac.TaskSoftTimeLimit.Seconds()), pyFloat(ac.TaskTimeLimit.Seconds())}
	}
	if m := r.Server.scaleMin.Load(); m > 0 {
		pool["autoscaler"] = map[string]any{"max": w.PoolSize(), "min": m}
	}
	st := w.Stats()
	return map[string]any{
		"total":          r.Server.totals.snapshot(),
		"pid":            pid,
		"clock":          strconv.FormatInt(r.Server.clock.Value(), 10),
		"uptime":         int(time.Since(r.Server.started).Seconds()),
		"pool":           pool,
		"broker":         brokerInfo(app.Config().BrokerURL),
		"prefetch_count": w.Prefetch(),
		"rusage":         rusage(),
		"sw_ident":       "celerity",
		"sw_ver":         Version(),
		"counts": map[string]int64{
			"received": st.Received.Load(), "succeeded": st.Succeeded.Load(), "failed": st.Failed.Load(),
			"retried": st.Retried.Load(), "revoked": st.Revoked.Load(), "rejected": st.Rejected.Load(),
		},
	}, nil
}

// brokerInfo is kombu's Connection.info() for the broker URL.
func brokerInfo(raw string) map[string]any {
	out := map[string]any{
		"hostname": nil, "userid": nil, "virtual_host": "/", "port": nil, "insist": false, "ssl": false,
		"transport": scheme(raw), "connect_timeout": 4, "transport_options": map[string]any{},
		"login_method": nil, "uri_prefix": nil, "heartbeat": pyFloat(120), "failover_strategy": "round-robin",
		"alternates": []any{},
	}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	out["hostname"] = u.Hostname()
	if p, err := strconv.Atoi(u.Port()); err == nil {
		out["port"] = p
	}
	if u.User != nil && u.User.Username() != "" {
		out["userid"] = u.User.Username()
	}
	switch u.Scheme {
	case "redis", "rediss", "unix", "redis+socket", "socket":
		out["transport"] = "redis"
		db, _ := RedisDB(raw)
		out["virtual_host"] = strconv.Itoa(db)
		out["ssl"] = u.Scheme == "rediss"
		if out["port"] == nil && u.Scheme != "unix" {
			out["port"] = 6379
		}
	case "amqp", "amqps", "pyamqp", "pyamqps":
		out["transport"] = "amqp"
		out["ssl"] = strings.HasSuffix(u.Scheme, "s")
		out["login_method"] = "AMQPLAIN"
		vh := strings.TrimPrefix(u.Path, "/")
		if vh == "" {
			vh = "/"
		}
		out["virtual_host"] = vh
		if out["port"] == nil {
			out["port"] = 5672
		}
	}
	return out
}
