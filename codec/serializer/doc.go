// Package serializer implements the body serializers kombu (and so Celery)
// knows, under kombu's names and content types, with kombu 5.2's
// semantics:
//
//	name     content_type                     content_encoding
//	json     application/json                 utf-8
//	msgpack  application/x-msgpack            binary
//	yaml     application/x-yaml               utf-8
//	pickle   application/x-python-serialize   binary   (known, always refused)
//	raw      application/data                 binary   (bytes as they are)
//	text     application/text                 utf-8    (text as it is)
//
// A [Serializer] encodes into a caller-owned dst ([Serializer.Append]),
// decodes into a caller-owned value ([Serializer.Decode]), and transcodes
// bodies to and from JSON ([Serializer.ToJSON], [FromJSON]) so that a
// consumer can treat every body as JSON. [Accept] is Celery's
// accept_content check. Serializer and Accept values are immutable and safe
// for concurrent use; the encoders and decoders behind them are pooled.
//
// # JSON
//
// kombu 5.2 writes plain JSON with no type tags (the {"__type__": ...}
// markers came with 5.3): an aware datetime is its isoformat() with
// "+00:00" replaced by "Z", a naive one has no zone, a date becomes a
// naive midnight, time, UUID and Decimal become strings, and bytes are an
// EncodeError. So Append writes time.Time as "2024-01-02T03:04:05Z" or
// "2024-01-02T03:04:05.123456+01:00" (microseconds only when not zero,
// nanoseconds truncated), refuses []byte with ErrUnsupported, and writes
// float64/float32 as Python does, with a fraction or an exponent (100.0,
// 1e+21), because Python reads 100 as an int. UUID and decimal types use
// their own MarshalJSON/MarshalText. Output is compact and not HTML-escaped.
// The receiving task gets strings; nothing converts them back.
//
// Decode follows encoding/json (github.com/goccy/go-json underneath), plus,
// for typed targets: time.Time accepts every form above, a space for "T",
// and a bare date (naive values are UTC, Celery's convention); []byte takes
// a JSON string's UTF-8 bytes (Python str -> bytes); both also accept kombu
// 5.3's tagged values ("datetime", "date", "bytes", "base64") so that
// bodies from newer Celery decode. Into an `any` numbers are float64, as
// with encoding/json: decode into int64, uint64 or json.Number to keep
// integers beyond 2^53 exact (ToJSON and FromJSON always keep them), and
// tagged values stay maps. Python's json.dumps writes NaN and Infinity,
// which are not JSON: such bodies fail with ErrDecode.
//
// # msgpack
//
// As kombu's packb(use_bin_type=True) / unpackb(raw=False), with
// github.com/vmihailenco/msgpack/v5: a Go string is msgpack str, []byte is
// bin (Python bytes), time.Time is the timestamp extension (Python's
// msgpack gives a msgpack.Timestamp; kombu 5.2 cannot send datetimes in
// msgpack at all), integers take their smallest form, struct fields are
// named by their json tags. Append refuses map keys that are not strings:
// Python's msgpack >= 1.0 rejects them (strict_map_key) and the worker drops
// the message.
//
// Decoding into *any, *[]any or *map[string]any uses this package's own
// reader: int64 (uint64 above MaxInt64), float64, string (a str must be
// UTF-8), []byte for bin, time.Time for timestamps, map[string]any with
// keys converted as json.dumps converts them (1 -> "1", True -> "true").
// Other targets are filled by vmihailenco/msgpack, with json tags; `any`
// values nested in them come from its loose decoding (int64, uint64,
// float64, and bin as a string). Every body is first checked whole: one
// value, no trailing bytes, lengths that fit the body, bounded nesting.
//
// # YAML
//
// kombu uses PyYAML's safe_dump/safe_load, which speak YAML 1.1. Append
// uses this package's own emitter, in flow style ([[2, 3], {"a": 1}]),
// because goccy/go-yaml's encoder writes YAML 1.2 that PyYAML misreads
// (unquoted 1e3, .inf or =, raw control characters): every string is
// double-quoted and escaped, floats always have a "." and a signed exponent,
// time.Time is a plain timestamp (PyYAML gives a datetime), []byte is
// !!binary (PyYAML gives bytes), map keys are sorted as safe_dump sorts
// them. Values other than generic trees (structs, typed maps) go through
// JSON first, so struct fields are named by their json tags.
//
// Decode parses with github.com/goccy/go-yaml, reading plain scalars as
// YAML 1.1 does where PyYAML's output depends on it (0o17 and 1e3 are
// strings), into a generic tree: an *any gets it directly (timestamps stay
// strings, !!binary is []byte, integers int64/uint64); other targets are
// filled from it through the JSON decoder, so json tags, time.Time and
// []byte behave as for JSON. Guards run before goccy/go-yaml builds
// anything: nesting is bounded (its parser is quadratic in depth), aliases
// may not expand a document beyond 2^20 nodes ("billion laughs"), and a
// panic inside it becomes ErrDecode.
//
// # Errors
//
// Every decoder rejects bad input with an error wrapping ErrDecode, never
// a panic or unbounded work; values a format cannot carry fail with
// ErrUnsupported; pickle, by any route, fails with ErrContentDisallowed.
package serializer
