package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	yaml "github.com/goccy/go-yaml"

	"github.com/celerity-go/celerity/transport"
)

// DefaultResultExpires is Celery's default result_expires: one day.
const DefaultResultExpires = 24 * time.Hour

// Config configures an App and its workers. Each field names the Celery
// setting it corresponds to (the key used in config files, and, upper-cased
// with a CELERITY_ prefix, in the environment) and its default. The zero
// Config is valid: memory transport, JSON, default queue "celery".
type Config struct {
	// Broker is the message broker. Default: a new in-process memory broker.
	// (Celery's broker_url is resolved to a Broker by the CLI, which knows
	// the transports; see BrokerURL.)
	Broker transport.Broker `celery:"-"`
	// Backend stores results. Default: an in-process memory backend when
	// Broker is also defaulted, otherwise none (results are then not stored).
	Backend transport.Backend `celery:"-"`

	// BrokerURL is broker_url, kept for the CLI and reports. Default "memory://".
	BrokerURL string `celery:"broker_url"`
	// ResultBackend is result_backend, kept for the CLI and reports.
	ResultBackend string `celery:"result_backend"`

	// TaskSerializer is task_serializer: "json" (default), "msgpack", "yaml".
	TaskSerializer string `celery:"task_serializer"`
	// TaskCompression is task_compression: "" (none, default), "zlib",
	// "bzip2", "zstd", ... (Celery 5.2 ignores this setting by mistake; we
	// honour it.)
	TaskCompression string `celery:"task_compression"`
	// AcceptContent is accept_content. Default ["json"].
	AcceptContent []string `celery:"accept_content"`

	// TaskDefaultQueue is task_default_queue. Default "celery".
	TaskDefaultQueue string `celery:"task_default_queue"`
	// TaskDefaultExchange is task_default_exchange. Default "" (Celery
	// publishes to the default exchange with the queue as routing key).
	TaskDefaultExchange string `celery:"task_default_exchange"`
	// TaskDefaultPriority is task_default_priority. Default 0.
	TaskDefaultPriority int `celery:"task_default_priority"`
	// TaskRoutes is task_routes: the first route whose pattern matches the
	// task name picks queue/exchange/routing key.
	TaskRoutes []Route `celery:"task_routes"`

	// TaskIgnoreResult is task_ignore_result. Default false.
	TaskIgnoreResult bool `celery:"task_ignore_result"`
	// TaskTrackStarted is task_track_started: store STARTED. Default false.
	TaskTrackStarted bool `celery:"task_track_started"`
	// TaskAcksLate is task_acks_late: ack after the task ran. Default false.
	TaskAcksLate bool `celery:"task_acks_late"`
	// TaskRejectOnWorkerLost is task_reject_on_worker_lost. Default false.
	// Only a pool of child processes can lose a worker while the worker
	// itself lives on; the goroutine and solo pools cannot, so there it has
	// no effect: if the whole process dies, acks_late messages are
	// unacknowledged and come back whatever this says.
	TaskRejectOnWorkerLost bool `celery:"task_reject_on_worker_lost"`
	// TaskTimeLimit is task_time_limit (hard). Default none.
	TaskTimeLimit time.Duration `celery:"task_time_limit"`
	// TaskSoftTimeLimit is task_soft_time_limit. Default none.
	TaskSoftTimeLimit time.Duration `celery:"task_soft_time_limit"`
	// TaskDefaultRetryDelay is Task.default_retry_delay. Default 180s.
	TaskDefaultRetryDelay time.Duration `celery:"task_default_retry_delay"`
	// TaskMaxRetries is Task.max_retries. Default 3; -1 = retry forever.
	// 0 is the default, as for every field here: a task that must never
	// retry says MaxRetries(0) (or its RetryError does).
	TaskMaxRetries int `celery:"task_max_retries"`

	// ResultExpires is result_expires: how long stored results live.
	// Default DefaultResultExpires. The engine's default memory backend
	// honours it; a Backend given here has its own setting
	// (memory.ResultExpires, redis.WithResultExpires).
	ResultExpires time.Duration `celery:"result_expires"`
	// ResultExtended is result_extended: store name, args, kwargs, worker,
	// retries and queue in result records. Default false.
	ResultExtended bool `celery:"result_extended"`

	// WorkerConcurrency is worker_concurrency. Default runtime.NumCPU().
	WorkerConcurrency int `celery:"worker_concurrency"`
	// WorkerPrefetchMultiplier is worker_prefetch_multiplier. Default 4
	// (0 is the default here; Celery's 0, no limit, has no equivalent).
	WorkerPrefetchMultiplier int `celery:"worker_prefetch_multiplier"`
	// WorkerMaxTasksPerChild is worker_max_tasks_per_child. Default 0 (never).
	WorkerMaxTasksPerChild int `celery:"worker_max_tasks_per_child"`
	// WorkerPool is worker_pool: "goroutine" (default), "solo" or
	// "prefork" (child processes: real hard time limits and recycling).
	WorkerPool string `celery:"worker_pool"`
	// WorkerMaxMemoryPerChild is worker_max_memory_per_child (KiB of
	// resident memory; prefork pool). Default 0 (never).
	WorkerMaxMemoryPerChild int64 `celery:"worker_max_memory_per_child"`
	// WorkerShutdownTimeout bounds the warm shutdown. Default 30s.
	WorkerShutdownTimeout time.Duration `celery:"worker_shutdown_timeout"`
	// Hostname is the worker node name, "celerity@<host>" by default.
	Hostname string `celery:"worker_hostname"`

	// Timezone is timezone (for beat and naive times). Default "UTC".
	Timezone string `celery:"timezone"`

	// Logger receives the engine's logs. Default: a quiet logger that
	// reports warnings and errors through slog.Default().
	Logger *slog.Logger `celery:"-"`
}

// Route sends tasks whose name matches Pattern (exact, or a glob with "*")
// to a queue (and optionally an exchange and routing key). Celery's
// task_routes in its {"pattern": {"queue": ...}} form.
type Route struct {
	Pattern    string `json:"pattern" yaml:"pattern"`
	Queue      string `json:"queue" yaml:"queue"`
	Exchange   string `json:"exchange,omitempty" yaml:"exchange"`
	RoutingKey string `json:"routing_key,omitempty" yaml:"routing_key"`
	Priority   *int   `json:"priority,omitempty" yaml:"priority"`
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.BrokerURL == "" {
		c.BrokerURL = "memory://"
	}
	if c.TaskSerializer == "" {
		c.TaskSerializer = "json"
	}
	if len(c.AcceptContent) == 0 {
		c.AcceptContent = []string{"json"}
	}
	if c.TaskDefaultQueue == "" {
		c.TaskDefaultQueue = "celery"
	}
	if c.TaskDefaultRetryDelay == 0 {
		c.TaskDefaultRetryDelay = 180 * time.Second
	}
	if c.TaskMaxRetries == 0 {
		c.TaskMaxRetries = 3
	}
	if c.ResultExpires == 0 {
		c.ResultExpires = DefaultResultExpires
	}
	if c.WorkerConcurrency == 0 {
		c.WorkerConcurrency = runtime.NumCPU()
	}
	if c.WorkerPrefetchMultiplier == 0 {
		c.WorkerPrefetchMultiplier = 4
	}
	if c.WorkerPool == "" {
		c.WorkerPool = "goroutine"
	}
	if c.WorkerShutdownTimeout == 0 {
		c.WorkerShutdownTimeout = 30 * time.Second
	}
	if c.Hostname == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "localhost"
		}
		c.Hostname = "celerity@" + host
	}
	if c.Timezone == "" {
		c.Timezone = "UTC"
	}
	if c.Logger == nil {
		c.Logger = slog.New(quietHandler{slog.Default().Handler()})
	}
	return c
}

// validate reports every invalid setting, each error naming it.
func (c Config) validate() error {
	var errs []error
	bad := func(name string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config %s: %s", name, fmt.Sprintf(format, args...)))
	}
	switch c.TaskSerializer {
	case "json", "msgpack", "yaml":
	default:
		bad("task_serializer", "%q is not json, msgpack or yaml", c.TaskSerializer)
	}
	if c.TaskDefaultPriority < 0 || c.TaskDefaultPriority > 9 {
		bad("task_default_priority", "%d is outside 0-9", c.TaskDefaultPriority)
	}
	if c.WorkerConcurrency < 0 {
		bad("worker_concurrency", "%d < 0", c.WorkerConcurrency)
	}
	if c.WorkerPrefetchMultiplier < 0 {
		bad("worker_prefetch_multiplier", "%d < 0", c.WorkerPrefetchMultiplier)
	}
	if c.WorkerMaxTasksPerChild < 0 {
		bad("worker_max_tasks_per_child", "%d < 0", c.WorkerMaxTasksPerChild)
	}
	switch c.WorkerPool {
	case "goroutine", "solo", "prefork":
	default:
		bad("worker_pool", "%q is not goroutine, solo or prefork", c.WorkerPool)
	}
	if c.WorkerMaxMemoryPerChild < 0 {
		bad("worker_max_memory_per_child", "%d < 0", c.WorkerMaxMemoryPerChild)
	}
	if c.TaskMaxRetries < -1 {
		bad("task_max_retries", "%d < -1", c.TaskMaxRetries)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"task_time_limit", c.TaskTimeLimit}, {"task_soft_time_limit", c.TaskSoftTimeLimit},
		{"task_default_retry_delay", c.TaskDefaultRetryDelay}, {"result_expires", c.ResultExpires},
		{"worker_shutdown_timeout", c.WorkerShutdownTimeout},
	} {
		if d.v < 0 {
			bad(d.name, "%v < 0", d.v)
		}
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		bad("timezone", "%v", err)
	}
	for i, r := range c.TaskRoutes {
		if r.Pattern == "" || (r.Queue == "" && r.RoutingKey == "") {
			bad("task_routes", "route %d needs a pattern and a queue or routing_key", i)
		}
	}
	return errors.Join(errs...)
}

// quietHandler passes on warnings and errors only.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

// LoadEnv sets the fields of c named by CELERITY_<SETTING> environment
// variables (for example CELERITY_WORKER_CONCURRENCY=8,
// CELERITY_TASK_ACKS_LATE=true, CELERITY_ACCEPT_CONTENT=json,msgpack,
// CELERITY_TASK_TIME_LIMIT=30 or 30s). Unknown CELERITY_ variables are
// ignored; a malformed value is an error naming the variable.
func (c *Config) LoadEnv() error {
	env := func(setting string) string { return "CELERITY_" + strings.ToUpper(setting) }
	return c.set(func(setting string) (string, bool) { return os.LookupEnv(env(setting)) }, env)
}

// LoadFile reads settings from a JSON or YAML file (chosen by extension:
// .json, .yaml, .yml) whose keys are Celery setting names, e.g.
// {"broker_url": "redis://127.0.0.1:6379/0", "task_acks_late": true,
// "task_routes": [{"pattern": "feed.*", "queue": "feeds"}]}. Durations are
// seconds (numbers, as in Celery) or Go duration strings. Unknown keys are
// an error naming them.
func (c *Config) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var raw map[string]any
	switch {
	case strings.HasSuffix(path, ".json"):
		err = json.Unmarshal(data, &raw)
	case strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".yml"):
		err = yaml.Unmarshal(data, &raw)
	default:
		return fmt.Errorf("config %s: unknown file type (want .json, .yaml or .yml)", path)
	}
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		known[f.Tag.Get("celery")] = true
	}
	for k := range raw {
		if !known[k] || k == "-" {
			return fmt.Errorf("config %s: unknown setting %q", path, k)
		}
	}
	if routes, ok := raw["task_routes"]; ok {
		b, _ := json.Marshal(routes)
		if err := json.Unmarshal(b, &c.TaskRoutes); err != nil {
			return fmt.Errorf("config %s: task_routes: %w", path, err)
		}
		delete(raw, "task_routes")
	}
	return c.set(func(setting string) (string, bool) {
		v, ok := raw[setting]
		if !ok {
			return "", false
		}
		switch v := v.(type) {
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			return strings.Join(parts, ","), true
		case string:
			return v, true
		default:
			return fmt.Sprint(v), true
		}
	}, func(setting string) string { return path + ": " + setting })
}

// set assigns every tagged field for which lookup returns a value; errors
// name the setting as where spells it.
func (c *Config) set(lookup func(setting string) (string, bool), where func(setting string) string) error {
	v := reflect.ValueOf(c).Elem()
	var errs []error
	for _, f := range reflect.VisibleFields(v.Type()) {
		name := f.Tag.Get("celery")
		if name == "" || name == "-" || name == "task_routes" {
			continue
		}
		s, ok := lookup(name)
		if !ok {
			continue
		}
		if err := setField(v.FieldByIndex(f.Index), strings.TrimSpace(s)); err != nil {
			errs = append(errs, fmt.Errorf("config %s: %w", where(name), err))
		}
	}
	return errors.Join(errs...)
}

func setField(fv reflect.Value, s string) error {
	switch fv.Interface().(type) {
	case time.Duration:
		if secs, err := strconv.ParseFloat(s, 64); err == nil {
			fv.SetInt(int64(secs * float64(time.Second)))
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is neither seconds nor a duration", s)
		}
		fv.SetInt(int64(d))
	case string:
		fv.SetString(s)
	case int, int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		fv.SetInt(n)
	case bool:
		switch strings.ToLower(s) {
		case "1", "true", "yes", "on":
			fv.SetBool(true)
		case "0", "false", "no", "off", "":
			fv.SetBool(false)
		default:
			return fmt.Errorf("%q is not a boolean", s)
		}
	case []string:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		fv.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported setting type %s", fv.Type())
	}
	return nil
}
