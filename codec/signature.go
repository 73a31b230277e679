package codec

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// Signature is a Celery signature dict (celery-wire.md §2.1): a task name
// with partial arguments and apply options, as it travels in embed
// (callbacks, errbacks, chain, chord), in options.link/link_error/chord
// and inside composite signatures' kwargs. Composite signatures
// ("celery.chain", "celery.group", "celery.chord", chunks, map, starmap)
// keep their members in Kwargs; Tasks and ChordParts decode them.
//
// MarshalJSON writes exactly the keys, order and separators Celery writes;
// UnmarshalJSON keeps everything it read, so a decoded signature
// re-encodes to the same JSON. Decoding copies (allocates); a Signature
// owns its memory and is not safe for concurrent mutation.
type Signature struct {
	Task        string
	Args        json.RawMessage // JSON array; empty means []
	Kwargs      json.RawMessage // JSON object; empty means {}
	Options     SignatureOptions
	SubtaskType string // "" means null (a plain task); "chain", "group", "chord", ...
	Immutable   bool   // .si(): the parent's result is not prepended to Args
}

// SignatureOptions are a signature's apply_async options. The known keys
// have typed fields (zero/nil = absent); any other key, and a known key
// whose value is null or of an unexpected type, is kept verbatim in Extra.
// Keys are written back in the order they were read; new ones follow in
// the order of the fields below, then Extra.
type SignatureOptions struct {
	TaskID     string // "task_id"
	ReplyTo    string // "reply_to"
	GroupID    string // "group_id"
	GroupIndex *int   // "group_index"
	RootID     string // "root_id"
	ParentID   string // "parent_id"
	Chord      *Signature
	Link       []Signature // "link": applied on success
	LinkError  []Signature // "link_error": applied on failure
	Queue      string
	Exchange   string
	RoutingKey string // "routing_key"
	Priority   *int
	Countdown  *float64
	// ETA and Expires are raw JSON as given: an ISO-8601 string or, for
	// expires, a number of seconds.
	ETA           json.RawMessage
	Expires       json.RawMessage
	TimeLimit     *float64 // "time_limit", seconds
	SoftTimeLimit *float64 // "soft_time_limit", seconds
	Extra         []Option

	order []string // key order as decoded
}

// Option is one untyped signature option: a key and its raw JSON value.
type Option struct {
	Key   string
	Value json.RawMessage
}

var optionKeys = []string{"task_id", "reply_to", "group_id", "group_index", "root_id", "parent_id",
	"chord", "link", "link_error", "queue", "exchange", "routing_key", "priority", "countdown",
	"eta", "expires", "time_limit", "soft_time_limit"}

// MarshalJSON implements json.Marshaler.
func (s Signature) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(nil), nil
}

// AppendJSON appends the signature's JSON form:
// {"task": ..., "args": [...], "kwargs": {...}, "options": {...},
// "subtask_type": ..., "immutable": ...}.
func (s *Signature) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"task": `...)
	dst = appendString(dst, s.Task)
	dst = append(dst, `, "args": `...)
	dst = appendRawOr(dst, s.Args, "[]")
	dst = append(dst, `, "kwargs": `...)
	dst = appendRawOr(dst, s.Kwargs, "{}")
	dst = append(dst, `, "options": `...)
	dst = s.Options.appendJSON(dst)
	dst = append(dst, `, "subtask_type": `...)
	if s.SubtaskType == "" {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, s.SubtaskType)
	}
	dst = append(dst, `, "immutable": `...)
	dst = appendBool(dst, s.Immutable)
	return append(dst, '}')
}

// has reports whether key has a value to write: a typed field, or an
// Extra entry.
func (o *SignatureOptions) has(key string) bool {
	return o.typedHas(key) || o.extra(key) >= 0
}

// typedHas reports whether key is a known option whose typed field is set.
func (o *SignatureOptions) typedHas(key string) bool {
	switch key {
	case "task_id":
		return o.TaskID != ""
	case "reply_to":
		return o.ReplyTo != ""
	case "group_id":
		return o.GroupID != ""
	case "group_index":
		return o.GroupIndex != nil
	case "root_id":
		return o.RootID != ""
	case "parent_id":
		return o.ParentID != ""
	case "chord":
		return o.Chord != nil
	case "link":
		return o.Link != nil
	case "link_error":
		return o.LinkError != nil
	case "queue":
		return o.Queue != ""
	case "exchange":
		return o.Exchange != ""
	case "routing_key":
		return o.RoutingKey != ""
	case "priority":
		return o.Priority != nil
	case "countdown":
		return o.Countdown != nil
	case "eta":
		return len(o.ETA) != 0
	case "expires":
		return len(o.Expires) != 0
	case "time_limit":
		return o.TimeLimit != nil
	case "soft_time_limit":
		return o.SoftTimeLimit != nil
	}
	return false
}

func (o *SignatureOptions) extra(key string) int {
	for i := range o.Extra {
		if o.Extra[i].Key == key {
			return i
		}
	}
	return -1
}

func (o *SignatureOptions) appendValue(dst []byte, key string) []byte {
	if !o.typedHas(key) {
		return appendRawOr(dst, o.Extra[o.extra(key)].Value, "null")
	}
	switch key {
	case "task_id":
		return appendString(dst, o.TaskID)
	case "reply_to":
		return appendString(dst, o.ReplyTo)
	case "group_id":
		return appendString(dst, o.GroupID)
	case "group_index":
		return strconv.AppendInt(dst, int64(*o.GroupIndex), 10)
	case "root_id":
		return appendString(dst, o.RootID)
	case "parent_id":
		return appendString(dst, o.ParentID)
	case "chord":
		return o.Chord.AppendJSON(dst)
	case "link":
		return appendSignatures(dst, o.Link)
	case "link_error":
		return appendSignatures(dst, o.LinkError)
	case "queue":
		return appendString(dst, o.Queue)
	case "exchange":
		return appendString(dst, o.Exchange)
	case "routing_key":
		return appendString(dst, o.RoutingKey)
	case "priority":
		return strconv.AppendInt(dst, int64(*o.Priority), 10)
	case "countdown":
		return appendNumber(dst, *o.Countdown)
	case "eta":
		return append(dst, o.ETA...)
	case "expires":
		return append(dst, o.Expires...)
	case "time_limit":
		return appendNumber(dst, *o.TimeLimit)
	case "soft_time_limit":
		return appendNumber(dst, *o.SoftTimeLimit)
	}
	return appendRawOr(dst, o.Extra[o.extra(key)].Value, "null")
}

func (o *SignatureOptions) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	n := 0
	var written []string
	write := func(key string) {
		if slices.Contains(written, key) || !o.has(key) {
			return
		}
		written = append(written, key)
		if n > 0 {
			dst = append(dst, ", "...)
		}
		n++
		dst = appendString(dst, key)
		dst = append(dst, ": "...)
		dst = o.appendValue(dst, key)
	}
	for _, k := range o.order {
		write(k)
	}
	for _, k := range optionKeys {
		write(k)
	}
	for i := range o.Extra {
		write(o.Extra[i].Key)
	}
	return append(dst, '}')
}

func appendSignatures(dst []byte, sigs []Signature) []byte {
	dst = append(dst, '[')
	for i := range sigs {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = sigs[i].AppendJSON(dst)
	}
	return append(dst, ']')
}

// UnmarshalJSON implements json.Unmarshaler. It requires an object with a
// string "task"; args must be an array, kwargs and options objects (each
// may be null or absent).
func (s *Signature) UnmarshalJSON(b []byte) error {
	sc := scanner{src: b}
	var sig Signature
	if err := sc.signature(&sig); err != nil {
		return withPlace(err, "signature", "")
	}
	if err := sc.end(); err != nil {
		return withPlace(err, "signature", "")
	}
	*s = sig
	return nil
}

// DecodeSignatures reads a JSON array of signatures (null or empty input
// gives nil).
func DecodeSignatures(raw []byte) ([]Signature, error) {
	sc := scanner{src: raw}
	if len(trimSpace(raw)) == 0 || sc.null() {
		if err := sc.end(); err != nil {
			return nil, withPlace(err, "signature", "")
		}
		return nil, nil
	}
	sigs, err := sc.signatures()
	if err == nil {
		err = sc.end()
	}
	return sigs, withPlace(err, "signature", "")
}

func (sc *scanner) signatures() ([]Signature, error) {
	if c := sc.peek(); c != '[' {
		return nil, shapeErr(c, "array of signatures")
	}
	if err := sc.open('['); err != nil {
		return nil, err
	}
	sigs := []Signature{}
	for first := true; ; first = false {
		done, err := sc.elem(first)
		if err != nil {
			return nil, err
		}
		if done {
			return sigs, nil
		}
		sigs = append(sigs, Signature{})
		if err := sc.signature(&sigs[len(sigs)-1]); err != nil {
			return nil, err
		}
	}
}

// signature reads one signature object.
func (sc *scanner) signature(sig *Signature) error {
	if c := sc.peek(); c != '{' {
		return shapeErr(c, "signature object")
	}
	if err := sc.open('{'); err != nil {
		return err
	}
	hasTask := false
	for first := true; ; first = false {
		key, esc, done, err := sc.member(first)
		if err != nil {
			return err
		}
		if done {
			break
		}
		var v []byte
		switch k := keyString(key, esc); k {
		case "task":
			sig.Task, err = sc.goString(k)
			hasTask = err == nil
		case "args":
			if v, err = rawOfKind(sc, "signature", k, '[', "array"); err == nil {
				sig.Args = slices.Clone(v)
			}
		case "kwargs":
			if v, err = rawOfKind(sc, "signature", k, '{', "object"); err == nil {
				sig.Kwargs = slices.Clone(v)
			}
		case "options":
			err = sc.options(&sig.Options)
		case "subtask_type":
			if sc.null() {
				break
			}
			sig.SubtaskType, err = sc.goString(k)
		case "immutable":
			sig.Immutable, err = boolField(sc, "signature", k)
		default:
			// Celery's signature dicts have no other keys; tolerate and drop
			// them (chord_size arrived in 5.3).
			_, err = sc.skip()
		}
		if err != nil {
			return err
		}
	}
	if !hasTask {
		return &DecodeError{Part: "signature", Field: "task", Err: ErrMissingField}
	}
	return nil
}

func (sc *scanner) options(o *SignatureOptions) error {
	if sc.null() {
		return nil
	}
	if c := sc.peek(); c != '{' {
		return &DecodeError{Part: "signature", Field: "options", Err: ErrFieldType, Detail: "want object, got " + kindName(c)}
	}
	if err := sc.open('{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		key, esc, done, err := sc.member(first)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		k := keyString(key, esc)
		o.order = append(o.order, k)
		c := sc.peek()
		start := sc.pos
		typed := true
		switch {
		case c == 'n' || !slices.Contains(optionKeys, k):
			typed = false
		case k == "chord":
			if c == '{' {
				o.Chord = new(Signature)
				err = sc.signature(o.Chord)
			} else {
				typed = false
			}
		case k == "link" || k == "link_error":
			var sigs []Signature
			switch c {
			case '[':
				sigs, err = sc.signatures()
			case '{':
				sigs = make([]Signature, 1)
				err = sc.signature(&sigs[0])
			default:
				typed = false
			}
			if k == "link" {
				o.Link = sigs
			} else {
				o.LinkError = sigs
			}
		case k == "group_index" || k == "priority" || k == "countdown" || k == "time_limit" || k == "soft_time_limit":
			typed = sc.numberOption(o, k)
		case k == "eta" || k == "expires":
			var v []byte
			if v, err = sc.skip(); err == nil {
				if k == "eta" {
					o.ETA = slices.Clone(v)
				} else {
					o.Expires = slices.Clone(v)
				}
			}
		default: // string options
			if c == '"' {
				var str string
				if str, err = sc.goString(k); err == nil {
					switch k {
					case "task_id":
						o.TaskID = str
					case "reply_to":
						o.ReplyTo = str
					case "group_id":
						o.GroupID = str
					case "root_id":
						o.RootID = str
					case "parent_id":
						o.ParentID = str
					case "queue":
						o.Queue = str
					case "exchange":
						o.Exchange = str
					case "routing_key":
						o.RoutingKey = str
					}
				}
			} else {
				typed = false
			}
		}
		if err != nil {
			return err
		}
		if !typed {
			sc.pos = start
			v, err := sc.skip()
			if err != nil {
				return err
			}
			o.Extra = append(o.Extra, Option{Key: k, Value: slices.Clone(v)})
		}
	}
}

// keyString returns an object key as a Go string (decoded).
func keyString(key []byte, esc bool) string {
	if esc {
		return string(appendUnescaped(nil, key))
	}
	return string(key)
}

// goString reads a string value as a Go string (copied).
func (sc *scanner) goString(field string) (string, error) {
	if c := sc.peek(); c != '"' {
		if c == 0 {
			return "", sc.err()
		}
		return "", typeError("signature", field, "string", c)
	}
	raw, esc, err := sc.str()
	if err != nil {
		return "", err
	}
	return keyString(raw, esc), nil
}

// numberOption reads a numeric option into its typed field and reports
// whether it could (an integer option must hold an integer, every number
// must be finite); otherwise the caller keeps the value in Extra.
func (sc *scanner) numberOption(o *SignatureOptions, k string) bool {
	c := sc.peek()
	if c != '-' && (c < '0' || c > '9') {
		return false
	}
	raw, err := sc.number()
	if err != nil {
		return false
	}
	f, ok := parseFloat(raw)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	switch k {
	case "group_index", "priority":
		n, ok := parseInt(raw)
		if !ok || n < math.MinInt32 || n > math.MaxInt32 || containsAny(raw, ".eE") {
			return false
		}
		v := int(n)
		if k == "priority" {
			o.Priority = &v
		} else {
			o.GroupIndex = &v
		}
	case "countdown":
		o.Countdown = &f
	case "time_limit":
		o.TimeLimit = &f
	default:
		o.SoftTimeLimit = &f
	}
	return true
}

// Tasks decodes the member signatures of a chain or group signature
// (kwargs["tasks"]; Celery also accepts them as the first positional arg).
func (s *Signature) Tasks() ([]Signature, error) {
	if raw, err := objectMember(s.Kwargs, "tasks"); err != nil || raw != nil {
		if err != nil {
			return nil, err
		}
		return DecodeSignatures(raw)
	}
	if raw, err := firstElem(s.Args); err != nil || raw != nil {
		if err != nil {
			return nil, err
		}
		return DecodeSignatures(raw)
	}
	return nil, &DecodeError{Part: "signature", Field: "kwargs.tasks", Err: ErrMissingField}
}

// ChordParts decodes a chord signature's header members and body. The
// header may be a list of signatures or a group signature (as a frozen
// chord writes it).
func (s *Signature) ChordParts() (header []Signature, body Signature, err error) {
	hraw, err := objectMember(s.Kwargs, "header")
	if err != nil {
		return nil, Signature{}, err
	}
	braw, err := objectMember(s.Kwargs, "body")
	if err != nil {
		return nil, Signature{}, err
	}
	if hraw == nil || braw == nil {
		return nil, Signature{}, &DecodeError{Part: "signature", Field: "kwargs.header/body", Err: ErrMissingField}
	}
	if t := trimSpace(hraw); len(t) > 0 && t[0] == '{' {
		var g Signature
		if err := g.UnmarshalJSON(hraw); err != nil {
			return nil, Signature{}, err
		}
		if header, err = g.Tasks(); err != nil {
			return nil, Signature{}, err
		}
	} else if header, err = DecodeSignatures(hraw); err != nil {
		return nil, Signature{}, err
	}
	if err := body.UnmarshalJSON(braw); err != nil {
		return nil, Signature{}, err
	}
	return header, body, nil
}

// objectMember returns the raw value of key in the JSON object obj, or
// nil when obj is empty/null or has no such key.
func objectMember(obj []byte, key string) ([]byte, error) {
	sc := scanner{src: obj}
	if len(trimSpace(obj)) == 0 || sc.null() {
		return nil, nil
	}
	if err := sc.open('{'); err != nil {
		return nil, withPlace(err, "signature", "kwargs")
	}
	for first := true; ; first = false {
		k, esc, done, err := sc.member(first)
		if err != nil {
			return nil, withPlace(err, "signature", "kwargs")
		}
		if done {
			return nil, nil
		}
		v, err := sc.skip()
		if err != nil {
			return nil, withPlace(err, "signature", "kwargs")
		}
		if keyString(k, esc) == key {
			return v, nil
		}
	}
}

// firstElem returns the raw first element of the JSON array arr, or nil.
func firstElem(arr []byte) ([]byte, error) {
	sc := scanner{src: arr}
	if len(trimSpace(arr)) == 0 || sc.null() {
		return nil, nil
	}
	if err := sc.open('['); err != nil {
		return nil, withPlace(err, "signature", "args")
	}
	if done, err := sc.elem(true); err != nil || done {
		return nil, withPlace(err, "signature", "args")
	}
	v, err := sc.skip()
	return v, withPlace(err, "signature", "args")
}

// Embed is the third element of a protocol-2 body: what to apply after the
// task (celery-wire.md §1.4, §2.2-2.5). Chain is in Celery's order: the
// next step is the last element. A decoded Embed owns its memory; it is not
// safe for concurrent mutation.
type Embed struct {
	Callbacks []Signature // nil: null
	Errbacks  []Signature // nil: null
	Chain     []Signature // nil: null; non-nil empty: [] (end of a chain)
	Chord     *Signature  // nil: null
}

// DecodeEmbed reads an embed object; empty input or null gives a zero
// Embed. Each member may be null; callbacks/errbacks may also be a single
// signature, as Celery's maybe_list accepts.
func DecodeEmbed(raw []byte) (Embed, error) {
	var e Embed
	sc := scanner{src: raw}
	if len(trimSpace(raw)) == 0 || sc.null() {
		return e, withPlace(sc.end(), "embed", "")
	}
	if c := sc.peek(); c != '{' {
		return e, &DecodeError{Part: "embed", Err: ErrFieldType, Detail: "want object, got " + kindName(c)}
	}
	if err := sc.open('{'); err != nil {
		return e, withPlace(err, "embed", "")
	}
	for first := true; ; first = false {
		key, esc, done, err := sc.member(first)
		if err != nil {
			return Embed{}, withPlace(err, "embed", "")
		}
		if done {
			break
		}
		k := keyString(key, esc)
		var sigs []Signature
		switch k {
		case "callbacks", "errbacks", "chain":
			switch c := sc.peek(); c {
			case 'n':
				_, err = sc.skip()
			case '{':
				sigs = make([]Signature, 1)
				err = sc.signature(&sigs[0])
			default:
				sigs, err = sc.signatures()
			}
			switch k {
			case "callbacks":
				e.Callbacks = sigs
			case "errbacks":
				e.Errbacks = sigs
			default:
				e.Chain = sigs
			}
		case "chord":
			if !sc.null() {
				e.Chord = new(Signature)
				err = sc.signature(e.Chord)
			}
		default:
			_, err = sc.skip()
		}
		if err != nil {
			return Embed{}, withPlace(err, "embed", k)
		}
	}
	return e, withPlace(sc.end(), "embed", "")
}

// AppendEmbed appends e as Celery writes it:
// {"callbacks": ..., "errbacks": ..., "chain": ..., "chord": ...}.
func AppendEmbed(dst []byte, e *Embed) []byte {
	dst = append(dst, `{"callbacks": `...)
	dst = appendSigsOrNull(dst, e.Callbacks)
	dst = append(dst, `, "errbacks": `...)
	dst = appendSigsOrNull(dst, e.Errbacks)
	dst = append(dst, `, "chain": `...)
	dst = appendSigsOrNull(dst, e.Chain)
	dst = append(dst, `, "chord": `...)
	if e.Chord == nil {
		dst = append(dst, "null"...)
	} else {
		dst = e.Chord.AppendJSON(dst)
	}
	return append(dst, '}')
}

func appendSigsOrNull(dst []byte, sigs []Signature) []byte {
	if sigs == nil {
		return append(dst, "null"...)
	}
	return appendSignatures(dst, sigs)
}
