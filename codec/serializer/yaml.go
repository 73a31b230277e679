package serializer

import (
	"encoding/base64"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
	"github.com/goccy/go-json/jsontext"
	jsonv2 "github.com/goccy/go-json/v2"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// The YAML rules are described in doc.go.

const (
	// yamlMaxDepth bounds the nesting of a YAML body: flow collections, and
	// the indentation of block ones.
	yamlMaxDepth = 512
	// yamlMaxNodes bounds the nodes of a YAML body with its aliases expanded.
	yamlMaxNodes = 1 << 20
)

func yamlErr(format string, args ...any) error {
	return fmt.Errorf("serializer: yaml: %w: "+format, append([]any{ErrDecode}, args...)...)
}

// yamlTree parses a YAML body into a generic tree, guarded.
func yamlTree(data []byte) (tree any, err error) {
	if len(data) == 0 {
		return nil, yamlErr("empty body")
	}
	tokens := lexer.Tokenize(string(data))
	if err := yamlCheckDepth(tokens); err != nil {
		return nil, err
	}
	resolveYAML11(tokens)
	defer func() {
		if p := recover(); p != nil {
			tree, err = nil, yamlErr("the YAML decoder failed: %v", p)
		}
	}()
	file, err := parser.Parse(tokens, 0)
	if err != nil {
		return nil, yamlErr("%s", yaml.FormatError(err, false, false))
	}
	if len(file.Docs) != 1 || file.Docs[0].Body == nil {
		return nil, yamlErr("a body must be one YAML document, not %d", len(file.Docs))
	}
	body := file.Docs[0].Body
	s := yamlSizer{anchors: map[string]int64{}}
	if s.size(body) > yamlMaxNodes {
		return nil, yamlErr("aliases expand the document beyond %d nodes", yamlMaxNodes)
	}
	if err := yaml.NodeToValue(body, &tree); err != nil {
		return nil, yamlErr("%s", yaml.FormatError(err, false, false))
	}
	return normalizeTree(tree), nil
}

// normalizeTree gives a decoded YAML tree the number types of the other
// decoders: int64 for integers (uint64 above MaxInt64), float64 for floats.
// goccy/go-yaml returns uint64 for every non-negative integer.
func normalizeTree(v any) any {
	switch x := v.(type) {
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	case int:
		return int64(x)
	case uint:
		return normalizeTree(uint64(x))
	case float32:
		return float64(x)
	case []any:
		for i, e := range x {
			x[i] = normalizeTree(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeTree(e)
		}
	}
	return v
}

// PyYAML's implicit resolvers (yaml/resolver.py): a plain scalar that
// matches none of them is a string in YAML 1.1.
var (
	yaml11Bool  = regexp.MustCompile(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	yaml11Int   = regexp.MustCompile(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	yaml11Float = regexp.MustCompile(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	yaml11Null  = regexp.MustCompile(`^(?:~|null|Null|NULL)$`)
)

// resolveYAML11 makes plain scalars that YAML 1.2 (goccy/go-yaml) would
// read as numbers, booleans or null, but YAML 1.1 (PyYAML) reads as
// strings, strings: PyYAML's safe_dump leaves such strings unquoted (0o17,
// for one, is an octal 15 to goccy and the text "0o17" to Python). Scalars
// with an explicit tag keep it.
func resolveYAML11(tokens token.Tokens) {
	tagged := false
	for _, tk := range tokens {
		switch tk.Type {
		case token.TagType:
			tagged = true
			continue
		case token.BoolType, token.IntegerType, token.BinaryIntegerType, token.OctetIntegerType, token.HexIntegerType,
			token.FloatType, token.InfinityType, token.NanType, token.NullType:
			if !tagged && !yaml11Bool.MatchString(tk.Value) && !yaml11Int.MatchString(tk.Value) &&
				!yaml11Float.MatchString(tk.Value) && !yaml11Null.MatchString(tk.Value) {
				tk.Type = token.StringType
			}
		}
		if tk.Type != token.SpaceType && tk.Type != token.CommentType {
			tagged = false
		}
	}
}

// yamlCheckDepth bounds the nesting the tokens can build: flow brackets,
// and the column of block indicators and of each line's first token.
func yamlCheckDepth(tokens token.Tokens) error {
	flow, line := 0, 0
	for _, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			flow++
			if flow > yamlMaxDepth {
				return yamlErr("nested deeper than %d levels", yamlMaxDepth)
			}
		case token.SequenceEndType, token.MappingEndType:
			flow--
		}
		if flow > 0 || tk.Position == nil {
			continue
		}
		first := tk.Position.Line != line
		line = tk.Position.Line
		if (first || tk.Type == token.SequenceEntryType || tk.Type == token.MappingKeyType) && tk.Position.Column > yamlMaxDepth {
			return yamlErr("indented deeper than %d columns", yamlMaxDepth)
		}
	}
	return nil
}

// yamlSizer counts the nodes of a YAML tree with aliases expanded, each
// anchor measured once.
type yamlSizer struct {
	anchors map[string]int64
}

func (s *yamlSizer) size(n ast.Node) int64 {
	var count int64
	ast.Walk(yamlVisitor(func(n ast.Node) bool {
		if count > yamlMaxNodes {
			return false
		}
		switch x := n.(type) {
		case *ast.AliasNode:
			count += max(s.anchors[x.Value.GetToken().Value], 1)
			return false
		case *ast.AnchorNode:
			sub := s.size(x.Value)
			s.anchors[x.Name.GetToken().Value] = sub
			count += sub
			return false
		}
		count++
		return true
	}), n)
	return count
}

type yamlVisitor func(ast.Node) bool

func (f yamlVisitor) Visit(n ast.Node) ast.Visitor {
	if n == nil || !f(n) {
		return nil
	}
	return f
}

func decodeYAML(data []byte, v any) error {
	if p, ok := v.(*any); ok {
		tree, err := yamlTree(data)
		if err != nil {
			return err
		}
		*p = tree
		return nil
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("serializer: yaml: %w: Decode needs a non-nil pointer, not %T", ErrUnsupported, v)
	}
	tree, err := yamlTree(data)
	if err != nil {
		return err
	}
	js, err := appendJSONRaw(nil, tree, yamlTreeToJSON)
	if err != nil {
		return fmt.Errorf("serializer: yaml: %w", err)
	}
	if err := decodeJSONRaw(js, v); err != nil {
		return fmt.Errorf("serializer: yaml: %w", err)
	}
	return nil
}

// yamlTreeToJSON carries a YAML tree's !!binary values to the JSON decoder
// as kombu 5.3 base64 tags, which its []byte hook reads.
var yamlTreeToJSON = jsonv2.JoinOptions(json.DefaultOptionsV1(), jsontext.EscapeForHTML(false),
	jsonv2.WithMarshalers(jsonv2.JoinMarshalers(
		jsonv2.MarshalToFunc(marshalKombuTime),
		jsonv2.MarshalToFunc(marshalBase64Tag),
	)))

// yamlToJSONOpts writes a YAML tree's !!binary values as JSON strings when
// they are UTF-8, as ToJSON promises.
var yamlToJSONOpts = jsonv2.JoinOptions(json.DefaultOptionsV1(), jsontext.EscapeForHTML(false),
	jsonv2.WithMarshalers(jsonv2.JoinMarshalers(
		jsonv2.MarshalToFunc(marshalKombuTime),
		jsonv2.MarshalToFunc(func(enc *jsontext.Encoder, b []byte) error {
			if !utf8.Valid(b) {
				return fmt.Errorf("%w: !!binary that is not UTF-8 has no JSON form", ErrUnsupported)
			}
			return enc.WriteToken(jsontext.String(string(b)))
		}),
	)))

// marshalBase64Tag writes b as kombu 5.3's {"__type__": "base64", ...}.
func marshalBase64Tag(enc *jsontext.Encoder, b []byte) error {
	buf := make([]byte, 0, 40+base64.StdEncoding.EncodedLen(len(b)))
	buf = append(buf, `{"__type__":"base64","__value__":"`...)
	buf = base64.StdEncoding.AppendEncode(buf, b)
	return enc.WriteValue(append(buf, `"}`...))
}

func yamlToJSON(dst, data []byte) ([]byte, error) {
	tree, err := yamlTree(data)
	if err != nil {
		return dst, err
	}
	if err := finiteTree(tree); err != nil {
		return dst, fmt.Errorf("serializer: yaml: %w", err)
	}
	out, err := appendJSONRaw(dst, tree, yamlToJSONOpts)
	if err != nil {
		return dst, fmt.Errorf("serializer: yaml: %w", err)
	}
	return out, nil
}

// finiteTree reports the first NaN or infinity of a generic tree, which
// JSON cannot carry.
func finiteTree(v any) error {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%w: %v has no JSON form", ErrUnsupported, x)
		}
	case []any:
		for _, e := range x {
			if err := finiteTree(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range x {
			if err := finiteTree(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// ---- the emitter ----

// appendYAMLTree emits v, then a newline.
func appendYAMLTree(dst []byte, v any) ([]byte, error) {
	out, err := emitYAML(dst, v, 0)
	if err != nil {
		return dst, fmt.Errorf("serializer: yaml: %w", err)
	}
	return append(out, '\n'), nil
}

// jsonForYAML encodes non-generic values for the emitter: time.Time and
// []byte become kombu 5.3 tags, which emitTagged turns back.
var jsonForYAML = jsonv2.JoinOptions(json.DefaultOptionsV1(),
	jsonv2.WithMarshalers(jsonv2.JoinMarshalers(
		jsonv2.MarshalToFunc(func(enc *jsontext.Encoder, t time.Time) error {
			return enc.WriteValue([]byte(`{"__type__":"datetime","__value__":"` + t.Format(time.RFC3339Nano) + `"}`))
		}),
		jsonv2.MarshalToFunc(marshalBase64Tag),
	)))

func emitYAML(dst []byte, v any, depth int) ([]byte, error) {
	if depth > maxWalkDepth*8 {
		return dst, fmt.Errorf("%w: nested deeper than %d levels", ErrUnsupported, maxWalkDepth*8)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return appendYAMLString(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float32:
		return appendYAMLFloat(dst, float64(x)), nil
	case float64:
		return appendYAMLFloat(dst, x), nil
	case time.Time:
		return appendYAMLTime(dst, x)
	case []byte:
		dst = append(dst, `!!binary "`...)
		dst = base64.StdEncoding.AppendEncode(dst, x)
		return append(dst, '"'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = emitYAML(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		if t, ok := kombuTagged(x); ok {
			return emitTagged(dst, t)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // as PyYAML's safe_dump sorts keys
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendYAMLString(dst, k)
			dst = append(dst, ": "...)
			var err error
			if dst, err = emitYAML(dst, x[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	// Anything else (structs, typed slices and maps, json.Marshalers):
	// through JSON, into a generic tree.
	js, err := appendJSONRaw(nil, v, jsonForYAML)
	if err != nil {
		return dst, err
	}
	tree, err := jsonToTree(js)
	if err != nil {
		return dst, err
	}
	return emitYAML(dst, tree, depth+1)
}

// kombuTagged returns the tag of a kombu 5.3 tagged value.
func kombuTagged(m map[string]any) ([2]string, bool) {
	if len(m) != 2 {
		return [2]string{}, false
	}
	t, ok1 := m["__type__"].(string)
	v, ok2 := m["__value__"].(string)
	if !ok1 || !ok2 || (t != "datetime" && t != "base64") {
		return [2]string{}, false
	}
	return [2]string{t, v}, true
}

func emitTagged(dst []byte, tag [2]string) ([]byte, error) {
	if tag[0] == "base64" {
		dst = append(dst, `!!binary "`...)
		dst = append(dst, tag[1]...)
		return append(dst, '"'), nil
	}
	t, err := time.Parse(time.RFC3339Nano, tag[1])
	if err != nil {
		return appendYAMLString(dst, tag[1]), nil
	}
	return appendYAMLTime(dst, t)
}

// appendYAMLTime writes a plain YAML 1.1 timestamp, which PyYAML reads as
// an aware datetime: kombu's ISO form, in UTC when the offset has seconds
// (the timestamp pattern has no room for them).
func appendYAMLTime(dst []byte, t time.Time) ([]byte, error) {
	if _, off := t.Zone(); off%60 != 0 {
		t = t.UTC()
	}
	return appendKombuTime(dst, t)
}

// appendYAMLFloat writes f so that YAML 1.1 (PyYAML) and 1.2 both read a
// float: a "." before any exponent, a signed exponent, .inf and .nan.
func appendYAMLFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, ".nan"...)
	case math.IsInf(f, 1):
		return append(dst, ".inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-.inf"...)
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'g', -1, 64)
	mant, exp := b, []byte(nil)
	for i, c := range b {
		if c == 'e' {
			mant, exp = b[:i], b[i:]
			break
		}
	}
	dst = append(dst, mant...)
	if !slices.Contains(mant, '.') {
		dst = append(dst, '.', '0')
	}
	return append(dst, exp...) // strconv writes e+NN / e-NN
}

// appendYAMLString writes s double-quoted, escaping what YAML 1.1 readers
// would not take raw: controls, DEL and C1, line separators, the BOM and
// non-characters. Invalid UTF-8 becomes U+FFFD, as JSON encoding does.
func appendYAMLString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff:
			dst = append(dst, '\\', 'u')
			dst = append(dst, "0123456789abcdef"[r>>12&0xf], "0123456789abcdef"[r>>8&0xf], "0123456789abcdef"[r>>4&0xf], "0123456789abcdef"[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}
