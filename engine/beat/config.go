package beat

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-json"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/token"
)

// MaxConfigSize is the largest schedule file the loaders accept, in bytes.
const MaxConfigSize = 4 << 20

// ParseConfigJSON parses a beat schedule written like Celery's beat_schedule
// setting, as a JSON object keyed by entry name:
//
//	{
//	  "add-every-10s":  {"task": "tasks.add", "schedule": 10.0, "args": [2, 2]},
//	  "report-weekday": {"task": "tasks.report",
//	                     "schedule": {"crontab": {"minute": 0, "hour": "9-17/4", "day_of_week": "mon-fri"}},
//	                     "kwargs": {"full": true},
//	                     "options": {"queue": "reports", "expires": 300, "priority": 5}},
//	  "cleanup":        {"task": "tasks.cleanup", "schedule": {"crontab": "30 4 * * *"}}
//	}
//
// Keys of an entry: "task" (required); "schedule" (required): seconds as a
// number, a Go duration string ("90s", "1h30m"), or {"crontab": fields}
// where fields is an object of minute, hour, day_of_week, day_of_month and
// month_of_year (each a string, an integer or a list of integers, default
// "*") or the one-string form of ParseCrontabString; "args" (array);
// "kwargs" (object); "options" (object: queue, exchange, routing_key,
// priority, expires, time_limit, soft_time_limit, serializer, compression,
// headers); "relative" (bool, interval schedules only; see
// Interval.Relative). Unknown keys are errors.
//
// Crontabs and relative intervals are evaluated in loc (nil means UTC).
// The entries are returned sorted by name, never run (zero LastRunAt).
// Errors wrap ErrConfig and, for a bad crontab, ErrCrontab or
// ErrNeverMatches too.
func ParseConfigJSON(data []byte, loc *time.Location) ([]*Entry, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrConfig, len(data), MaxConfigSize)
	}
	if loc == nil {
		loc = time.UTC
	}
	top := map[string]json.RawMessage{}
	if err := decodeObject(data, &top); err != nil {
		return nil, fmt.Errorf("%w: the schedule must be a JSON object of entries: %v", ErrConfig, err)
	}
	entries := make([]*Entry, 0, len(top))
	for name, raw := range top {
		e, err := parseEntry(name, raw, loc)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// ParseConfigYAML parses the same schedule as ParseConfigJSON written in
// YAML. YAML aliases (*name) are rejected, which bounds the work a file can
// cause; crontab fields starting with "*" must therefore be quoted
// (minute: "*/15").
func ParseConfigYAML(data []byte, loc *time.Location) ([]*Entry, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrConfig, len(data), MaxConfigSize)
	}
	for _, tk := range lexer.Tokenize(string(data)) {
		if tk.Type == token.AliasType {
			return nil, fmt.Errorf("%w: line %d: YAML aliases (%s) are not supported; quote crontab fields that start with \"*\", e.g. minute: \"*/15\"",
				ErrConfig, tk.Position.Line, quote(tk.Value))
		}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: YAML: %v", ErrConfig, err)
	}
	return ParseConfigJSON(js, loc)
}

// LoadConfigFile reads a schedule file: JSON when its name ends in .json,
// YAML when in .yaml or .yml.
func LoadConfigFile(path string, loc *time.Location) ([]*Entry, error) {
	var parse func([]byte, *time.Location) ([]*Entry, error)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		parse = ParseConfigJSON
	case ".yaml", ".yml":
		parse = ParseConfigYAML
	default:
		return nil, fmt.Errorf("%w: %s: want a .json, .yaml or .yml file", ErrConfig, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("beat: schedule config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("beat: schedule config %s: %w", path, err)
	}
	entries, err := parse(data, loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return entries, nil
}

func parseEntry(name string, raw json.RawMessage, loc *time.Location) (*Entry, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: entry %s: %s", ErrConfig, quote(name), fmt.Sprintf(format, a...))
	}
	if name == "" {
		return nil, bad("the entry name is empty")
	}
	keys := map[string]json.RawMessage{}
	if err := decodeObject(raw, &keys); err != nil {
		return nil, bad("want an object with task and schedule: %v", err)
	}
	e := &Entry{Name: name}
	var relative bool
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		v := keys[k]
		var err error
		switch k {
		case "task":
			e.Task, err = stringValue(v)
			if err == nil && e.Task == "" {
				err = fmt.Errorf("empty")
			}
		case "schedule": // parsed below, once "relative" is known
		case "args":
			e.Args, err = container(v, '[', "array")
		case "kwargs":
			e.Kwargs, err = container(v, '{', "object")
		case "options":
			e.Options, err = parseOptions(v)
		case "relative":
			err = json.Unmarshal(v, &relative)
		default:
			return nil, bad("unknown key %s (want task, schedule, args, kwargs, options, relative)", quote(k))
		}
		if err != nil {
			return nil, bad("%s: %v", k, err)
		}
	}
	if e.Task == "" {
		return nil, bad("missing task")
	}
	raw, ok := keys["schedule"]
	if !ok {
		return nil, bad("missing schedule")
	}
	s, err := parseSchedule(raw, relative, loc)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %s: schedule: %w", ErrConfig, quote(name), err)
	}
	e.Schedule = s
	return e, nil
}

func parseSchedule(raw json.RawMessage, relative bool, loc *time.Location) (Schedule, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		every, err := duration(raw)
		if err != nil {
			return nil, err
		}
		s, err := NewInterval(every)
		if err != nil {
			return nil, err
		}
		if relative {
			s = s.Relative(loc)
		}
		return s, nil
	}
	if relative {
		return nil, fmt.Errorf("relative applies only to interval schedules")
	}
	obj := map[string]json.RawMessage{}
	if err := decodeObject(raw, &obj); err != nil {
		return nil, err
	}
	spec, ok := obj["crontab"]
	if len(obj) != 1 || !ok {
		if _, solar := obj["solar"]; solar {
			return nil, fmt.Errorf("solar schedules are not supported")
		}
		return nil, fmt.Errorf("want a number of seconds, a duration string or {\"crontab\": ...}")
	}
	spec = bytes.TrimSpace(spec)
	if len(spec) > 0 && spec[0] == '"' {
		line, err := stringValue(spec)
		if err != nil {
			return nil, err
		}
		c, err := ParseCrontabString(line)
		if err != nil {
			return nil, err
		}
		return c.In(loc), nil
	}
	fieldsObj := map[string]json.RawMessage{}
	if err := decodeObject(spec, &fieldsObj); err != nil {
		return nil, fmt.Errorf("crontab: want an object of fields or a \"m h dom moy dow\" string: %v", err)
	}
	var args [5]string
	for i, f := range fields {
		args[i] = "*"
		v, ok := fieldsObj[f.name]
		if !ok {
			continue
		}
		delete(fieldsObj, f.name)
		s, err := cronValue(v)
		if err != nil {
			return nil, fmt.Errorf("crontab %s: %v", f.name, err)
		}
		args[i] = s
	}
	if len(fieldsObj) > 0 {
		return nil, fmt.Errorf("crontab: unknown field %s (want minute, hour, day_of_week, day_of_month, month_of_year)",
			quote(slices.Sorted(maps.Keys(fieldsObj))[0]))
	}
	c, err := ParseCrontab(args[0], args[1], args[2], args[3], args[4])
	if err != nil {
		return nil, err
	}
	return c.In(loc), nil
}

// cronValue turns a crontab field given as a string, an integer or a list
// of integers (Celery's int, str or iterable) into its string form.
func cronValue(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", fmt.Errorf("empty value")
	}
	switch raw[0] {
	case '"':
		return stringValue(raw)
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return "", err
		}
		if len(list) == 0 {
			return "", fmt.Errorf("empty list")
		}
		parts := make([]string, len(list))
		for i, v := range list {
			n, err := integer(v)
			if err != nil {
				return "", fmt.Errorf("list item %d: %v", i, err)
			}
			parts[i] = strconv.Itoa(n)
		}
		return strings.Join(parts, ","), nil
	default:
		n, err := integer(raw)
		if err != nil {
			return "", err
		}
		return strconv.Itoa(n), nil
	}
}

func parseOptions(raw json.RawMessage) (Options, error) {
	var o Options
	keys := map[string]json.RawMessage{}
	if err := decodeObject(raw, &keys); err != nil {
		return o, err
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		v := keys[k]
		var err error
		switch k {
		case "queue":
			o.Queue, err = stringValue(v)
		case "exchange":
			o.Exchange, err = stringValue(v)
		case "routing_key":
			o.RoutingKey, err = stringValue(v)
		case "serializer":
			o.Serializer, err = stringValue(v)
		case "compression":
			o.Compression, err = stringValue(v)
		case "priority":
			var n int
			if n, err = integer(v); err == nil && (n < 0 || n > 255) {
				err = fmt.Errorf("%d is out of range 0-255", n)
			}
			o.Priority, o.HasPriority = uint8(n), err == nil
		case "expires":
			o.Expires, err = seconds(v)
		case "time_limit":
			o.TimeLimit, err = seconds(v)
		case "soft_time_limit":
			o.SoftTimeLimit, err = seconds(v)
		case "headers":
			o.Headers, err = container(v, '{', "object")
		default:
			return o, fmt.Errorf("unknown option %s (want queue, exchange, routing_key, priority, expires, time_limit, soft_time_limit, serializer, compression, headers)", quote(k))
		}
		if err != nil {
			return o, fmt.Errorf("%s: %v", k, err)
		}
	}
	return o, nil
}

// decodeObject decodes a JSON object (not null, not another type) into m.
func decodeObject(raw []byte, m *map[string]json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("not a JSON object")
	}
	return json.Unmarshal(raw, m)
}

func stringValue(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("want a string")
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// container returns a copy of raw if it is a JSON value opening with open
// (an array or object), nil for null.
func container(raw json.RawMessage, open byte, what string) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != open || !json.Valid(raw) {
		return nil, fmt.Errorf("want a JSON %s", what)
	}
	return bytes.Clone(raw), nil
}

func integer(raw json.RawMessage) (int, error) {
	f, err := number(raw)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, fmt.Errorf("want an integer, got %s", bytes.TrimSpace(raw))
	}
	return int(f), nil
}

func number(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, fmt.Errorf("want a number")
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	return f, nil
}

// seconds parses a positive number of seconds.
func seconds(raw json.RawMessage) (time.Duration, error) {
	f, err := number(raw)
	if err != nil {
		return 0, err
	}
	if !(f > 0) || f > math.MaxInt64/float64(time.Second) {
		return 0, fmt.Errorf("%s seconds must be positive and under 292 years", bytes.TrimSpace(raw))
	}
	d := time.Duration(f * float64(time.Second))
	if d <= 0 {
		return 0, fmt.Errorf("%s seconds rounds to zero", bytes.TrimSpace(raw))
	}
	return d, nil
}

// duration parses an interval given as seconds or as a Go duration string.
func duration(raw json.RawMessage) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		s, err := stringValue(raw)
		if err != nil {
			return 0, err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("want seconds or a duration such as \"90s\": %v", err)
		}
		if d <= 0 {
			return 0, fmt.Errorf("%w: run_every %v must be positive", ErrInterval, d)
		}
		return d, nil
	}
	d, err := seconds(raw)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInterval, err)
	}
	return d, nil
}
