package codec

import (
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// AMQPProperties are the AMQP basic properties of a Celery task message
// (celery-wire.md §1.2, §4.2) as plain data, so this package need not
// import an AMQP client. A transport copies them to and from its client's
// publishing/delivery type.
type AMQPProperties struct {
	ContentType     string
	ContentEncoding string
	CorrelationID   string
	ReplyTo         string
	Expiration      string // per-message TTL in milliseconds, decimal; "" = none
	DeliveryMode    uint8  // 2 = persistent
	Priority        uint8
}

// AMQPPropertiesOf returns m's properties with the same defaults as
// AppendRedisEnvelope (content type application/json, delivery mode 2,
// correlation id = task id). The strings are copies.
func AMQPPropertiesOf(m *Message) AMQPProperties {
	p := AMQPProperties{
		ContentType:     ContentTypeJSON,
		ContentEncoding: defaultEncoding(m.ContentType),
		CorrelationID:   string(m.CorrelationID),
		ReplyTo:         string(m.ReplyTo),
		DeliveryMode:    deliveryModeOf(m),
		Priority:        m.Priority,
	}
	if len(m.ContentType) != 0 {
		p.ContentType = string(m.ContentType)
	}
	if len(m.ContentEncoding) != 0 {
		p.ContentEncoding = string(m.ContentEncoding)
	}
	if p.CorrelationID == "" {
		p.CorrelationID = string(m.ID)
	}
	if m.HasExpiration {
		p.Expiration = strconv.FormatInt(m.Expiration, 10)
	}
	return p
}

// AMQPHeaders fills dst (cleared first; allocated when nil) with m's
// Celery headers typed as rabbitmq/amqp091-go can write them and as
// py-amqp writes them (§4.2, pitfall 11): strings as string, null as nil,
// integers as int32 (int64 beyond ±2^31), non-integral numbers as float64,
// booleans as bool, timelimit as []any{hard, soft}. Strings are copies.
//
// Extra headers (m.ExtraHeaders) are converted from JSON the same way;
// nested JSON objects become map[string]any, which amqp091-go does not
// write: a transport must convert them to amqp.Table (the standard Celery
// headers never contain one).
func AMQPHeaders(m *Message, dst map[string]any) map[string]any {
	if dst == nil {
		dst = make(map[string]any, 20)
	} else {
		clear(dst)
	}
	lang := "go"
	if len(m.Lang) != 0 {
		lang = string(m.Lang)
	}
	dst["lang"] = lang
	dst["task"] = string(m.Task)
	dst["id"] = string(m.ID)
	dst["shadow"] = strOrNil(m.Shadow)
	dst["eta"] = timeOrNil(m.ETA)
	dst["expires"] = timeOrNil(m.Expires)
	dst["group"] = strOrNil(m.Group)
	if m.HasGroupIndex {
		dst["group_index"] = amqpInt(int64(m.GroupIndex))
	} else {
		dst["group_index"] = nil
	}
	dst["retries"] = amqpInt(int64(m.Retries))
	dst["timelimit"] = []any{limitOrNil(m.TimeLimit.Hard, m.TimeLimit.HasHard), limitOrNil(m.TimeLimit.Soft, m.TimeLimit.HasSoft)}
	if len(m.RootID) != 0 {
		dst["root_id"] = string(m.RootID)
	} else {
		dst["root_id"] = string(m.ID)
	}
	dst["parent_id"] = strOrNil(m.ParentID)
	dst["argsrepr"] = string(m.ArgsRepr)
	dst["kwargsrepr"] = string(m.KwargsRepr)
	dst["origin"] = strOrNil(m.Origin)
	dst["ignore_result"] = m.IgnoreResult
	if len(m.ExtraHeaders) != 0 {
		if v, err := jsonToAny(m.ExtraHeaders); err == nil {
			if extra, ok := v.(map[string]any); ok {
				for k, x := range extra {
					if !knownHeader(unsafeconv.Bytes(k)) {
						dst[k] = x
					}
				}
			}
		}
	}
	if len(m.Compression) != 0 {
		dst["compression"] = string(m.Compression)
	}
	return dst
}

func strOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	var buf [40]byte
	return string(AppendISOTime(buf[:0], t))
}

func limitOrNil(f float64, ok bool) any {
	if !ok {
		return nil
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return amqpInt(int64(f))
	}
	return f
}

// amqpInt types n as py-amqp would: 32-bit when it fits, else 64-bit.
func amqpInt(n int64) any {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		return int32(n)
	}
	return n
}

// DecodeAMQP resets m and fills it from an AMQP delivery: headers (the
// field table, as map[string]any), the basic properties and the raw body.
// It accepts every type an AMQP client may hand back for the known headers:
// strings or []byte, any signed or unsigned integer width, float32/64,
// nil, []any, nested maps (map[string]any or a named map type such as
// amqp.Table) and time.Time (for eta/expires; py-amqp writes a Python
// datetime as a timestamp).
//
// Byte-slice fields are read-only views of the header strings and of
// body; unknown headers are re-encoded as JSON into m.ExtraHeaders (keys
// sorted). As on Redis, a message without a "task" header is decoded as
// protocol 1 or rejected with ErrUnknownMessage. The caller sets the
// delivery fields (Exchange, RoutingKey, Tag, Redelivered) afterwards.
func DecodeAMQP(m *Message, headers map[string]any, p AMQPProperties, body []byte) error {
	m.Reset()
	m.Protocol = 2
	m.ContentType = unsafeconv.Bytes(p.ContentType)
	m.ContentEncoding = unsafeconv.Bytes(p.ContentEncoding)
	m.CorrelationID = unsafeconv.Bytes(p.CorrelationID)
	m.ReplyTo = unsafeconv.Bytes(p.ReplyTo)
	m.DeliveryMode = p.DeliveryMode
	m.Priority = p.Priority
	if p.Expiration != "" {
		n, err := parseExpiration(unsafeconv.Bytes(p.Expiration))
		if err != nil {
			return &DecodeError{Part: "amqp", Field: "expiration", Err: ErrBadValue, Detail: err.Error()}
		}
		m.Expiration, m.HasExpiration = n, true
	}
	m.Body = body
	var extra []string
	hasTask := false
	for k, v := range headers {
		var err error
		switch k {
		case "lang":
			m.Lang, err = amqpStr(v, k)
		case "task":
			m.Task, err = amqpStr(v, k)
			hasTask = true
		case "id":
			m.ID, err = amqpStr(v, k)
		case "shadow":
			m.Shadow, err = amqpStr(v, k)
		case "eta":
			m.ETA, err = amqpTime(v, k)
		case "expires":
			m.Expires, err = amqpTime(v, k)
		case "group":
			m.Group, err = amqpStr(v, k)
		case "group_index":
			var n int64
			var null bool
			n, null, err = amqpInt64(v, k, 0, math.MaxInt32)
			m.GroupIndex, m.HasGroupIndex = int(n), !null
		case "retries":
			var n int64
			n, _, err = amqpInt64(v, k, 0, math.MaxInt32)
			m.Retries = int(n)
		case "timelimit":
			m.TimeLimit, err = amqpTimeLimit(v)
		case "root_id":
			m.RootID, err = amqpStr(v, k)
		case "parent_id":
			m.ParentID, err = amqpStr(v, k)
		case "argsrepr":
			m.ArgsRepr, err = amqpStr(v, k)
		case "kwargsrepr":
			m.KwargsRepr, err = amqpStr(v, k)
		case "origin":
			m.Origin, err = amqpStr(v, k)
		case "ignore_result":
			m.IgnoreResult, err = amqpBool(v, k)
		case "compression":
			m.Compression, err = amqpStr(v, k)
		case "redelivered":
			var r bool
			r, err = amqpBool(v, k)
			m.Redelivered = m.Redelivered || r
		default:
			extra = append(extra, k)
		}
		if err != nil {
			return err
		}
	}
	if len(extra) != 0 {
		slices.Sort(extra)
		start := len(m.scratch)
		m.scratch = append(m.scratch, '{')
		for i, k := range extra {
			if i > 0 {
				m.scratch = append(m.scratch, ", "...)
			}
			m.scratch = appendString(m.scratch, k)
			m.scratch = append(m.scratch, ": "...)
			var err error
			if m.scratch, err = appendAnyJSON(m.scratch, headers[k], 0); err != nil {
				return withPlace(err, "amqp", k)
			}
		}
		m.scratch = append(m.scratch, '}')
		m.ExtraHeaders = m.scratch[start:len(m.scratch):len(m.scratch)]
	}
	if !hasTask {
		return m.fromV1()
	}
	return m.checkRequired("amqp")
}

func amqpTypeError(field, want string, v any) error {
	return &DecodeError{Part: "amqp", Field: field, Err: ErrFieldType, Detail: "want " + want + ", got " + amqpTypeName(v)}
}

func amqpTypeName(v any) string {
	if v == nil {
		return "null"
	}
	return reflect.TypeOf(v).String()
}

func amqpStr(v any, field string) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return unsafeconv.Bytes(x), nil
	case []byte:
		return x, nil
	}
	return nil, amqpTypeError(field, "string", v)
}

func amqpBool(v any, field string) (bool, error) {
	switch x := v.(type) {
	case nil:
		return false, nil
	case bool:
		return x, nil
	}
	return false, amqpTypeError(field, "boolean", v)
}

// amqpNumber converts any numeric AMQP value to float64 (and int64 when
// integral).
func amqpNumber(v any) (f float64, n int64, isInt, ok bool) {
	switch x := v.(type) {
	case int8:
		return float64(x), int64(x), true, true
	case int16:
		return float64(x), int64(x), true, true
	case int32:
		return float64(x), int64(x), true, true
	case int64:
		return float64(x), x, true, true
	case int:
		return float64(x), int64(x), true, true
	case uint8:
		return float64(x), int64(x), true, true
	case uint16:
		return float64(x), int64(x), true, true
	case uint32:
		return float64(x), int64(x), true, true
	case uint64:
		if x > math.MaxInt64 {
			return float64(x), 0, false, true
		}
		return float64(x), int64(x), true, true
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		return 0, 0, false, false
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<62 {
		return f, int64(f), true, true
	}
	return f, 0, false, true
}

func amqpInt64(v any, field string, lo, hi int64) (int64, bool, error) {
	if v == nil {
		return 0, true, nil
	}
	_, n, isInt, ok := amqpNumber(v)
	if !ok || !isInt {
		return 0, false, amqpTypeError(field, "integer", v)
	}
	if n < lo || n > hi {
		return 0, false, &DecodeError{Part: "amqp", Field: field, Err: ErrBadValue, Detail: "out of range"}
	}
	return n, false, nil
}

func amqpTime(v any, field string) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return x.UTC(), nil
	}
	b, err := amqpStr(v, field)
	if err != nil {
		return time.Time{}, amqpTypeError(field, "ISO-8601 string", v)
	}
	if len(b) == 0 {
		return time.Time{}, nil
	}
	t, err := ParseISOTime(b)
	if err != nil {
		return time.Time{}, &DecodeError{Part: "amqp", Field: field, Err: ErrBadValue,
			Detail: "bad time " + quoteTrunc(b) + ": " + err.(*DecodeError).Detail}
	}
	return t, nil
}

func amqpTimeLimit(v any) (TimeLimit, error) {
	var tl TimeLimit
	if v == nil {
		return tl, nil
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return tl, amqpTypeError("timelimit", "[hard, soft] array", v)
	}
	for i, x := range arr {
		if x == nil {
			continue
		}
		f, _, _, ok := amqpNumber(x)
		if !ok {
			return TimeLimit{}, amqpTypeError("timelimit", "number or null", x)
		}
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			return TimeLimit{}, &DecodeError{Part: "amqp", Field: "timelimit", Err: ErrBadValue, Detail: "want a finite, non-negative number"}
		}
		if i == 0 {
			tl.Hard, tl.HasHard = f, true
		} else {
			tl.Soft, tl.HasSoft = f, true
		}
	}
	return tl, nil
}

// appendAnyJSON writes an AMQP header value as JSON (Python's formatting).
// Named map and slice types (amqp.Table) are handled by reflection; an
// AMQP decimal (a struct with Scale and Value fields) becomes a decimal
// string, as kombu's JSON writes a Python Decimal.
func appendAnyJSON(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, &DecodeError{Err: ErrTooDeep}
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return appendBool(dst, x), nil
	case string:
		return appendString(dst, x), nil
	case []byte:
		return appendString(dst, x), nil
	case time.Time:
		dst = append(dst, '"')
		dst = AppendISOTime(dst, x)
		return append(dst, '"'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = appendAnyJSON(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	if f, n, isInt, ok := amqpNumber(v); ok {
		if isInt {
			return strconv.AppendInt(dst, n, 10), nil
		}
		return appendNumber(dst, f), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		keys := make([]string, 0, rv.Len())
		for _, k := range rv.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendString(dst, k)
			dst = append(dst, ": "...)
			var err error
			if dst, err = appendAnyJSON(dst, rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key())).Interface(), depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case reflect.Slice:
		dst = append(dst, '[')
		for i := range rv.Len() {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = appendAnyJSON(dst, rv.Index(i).Interface(), depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case reflect.Struct:
		scale, value := rv.FieldByName("Scale"), rv.FieldByName("Value")
		if scale.IsValid() && value.IsValid() && scale.CanUint() && value.CanInt() {
			return appendDecimal(dst, value.Int(), int(scale.Uint())), nil
		}
	}
	return dst, &DecodeError{Err: ErrFieldType, Detail: "unsupported AMQP value of type " + amqpTypeName(v)}
}

// appendDecimal writes value * 10^-scale as a JSON string.
func appendDecimal(dst []byte, value int64, scale int) []byte {
	digits := strconv.FormatInt(max(value, -value), 10)
	dst = append(dst, '"')
	if value < 0 {
		dst = append(dst, '-')
	}
	if scale > 0 {
		for len(digits) <= scale {
			digits = "0" + digits
		}
		dst = append(dst, digits[:len(digits)-scale]...)
		dst = append(dst, '.')
		dst = append(dst, digits[len(digits)-scale:]...)
	} else {
		dst = append(dst, digits...)
	}
	return append(dst, '"')
}

// jsonToAny converts JSON text to AMQP-writable Go values: string, bool,
// nil, int32/int64 for integer literals, float64, []any and map[string]any.
func jsonToAny(src []byte) (any, error) {
	s := scanner{src: src}
	v, err := s.anyValue()
	if err != nil {
		return nil, err
	}
	return v, s.end()
}

func (s *scanner) anyValue() (any, error) {
	switch c := s.peek(); c {
	case '"':
		raw, esc, err := s.str()
		if err != nil {
			return nil, err
		}
		if esc {
			return string(appendUnescaped(nil, raw)), nil
		}
		return string(raw), nil
	case '{':
		if err := s.open('{'); err != nil {
			return nil, err
		}
		obj := map[string]any{}
		for first := true; ; first = false {
			key, esc, done, err := s.member(first)
			if err != nil {
				return nil, err
			}
			if done {
				return obj, nil
			}
			k := string(key)
			if esc {
				k = string(appendUnescaped(nil, key))
			}
			if obj[k], err = s.anyValue(); err != nil {
				return nil, err
			}
		}
	case '[':
		if err := s.open('['); err != nil {
			return nil, err
		}
		arr := []any{}
		for first := true; ; first = false {
			done, err := s.elem(first)
			if err != nil {
				return nil, err
			}
			if done {
				return arr, nil
			}
			v, err := s.anyValue()
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
	case 't', 'f':
		return s.boolean()
	case 'n':
		return nil, s.literal("null")
	default:
		raw, err := s.number()
		if err != nil {
			return nil, err
		}
		if n, ok := parseInt(raw); ok && !containsAny(raw, ".eE") {
			return amqpInt(n), nil
		}
		f, _ := parseFloat(raw)
		return f, nil
	}
}

func containsAny(b []byte, chars string) bool {
	for _, c := range b {
		for i := range len(chars) {
			if c == chars[i] {
				return true
			}
		}
	}
	return false
}
