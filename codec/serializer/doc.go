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
// accept_content check.
//
// # JSON (kombu 5.2)
//
// kombu 5.2 writes plain JSON with no type tags: an aware datetime is its
// isoformat() with "+00:00" replaced by "Z" ("2024-01-02T03:04:05Z",
// microseconds only when non-zero), a naive one has no zone, a date becomes
// midnight, UUID and Decimal become strings, and bytes are an EncodeError.
// Append writes time.Time in that form and refuses []byte with
// ErrUnsupported. The receiving task gets strings; nothing converts them
// back. Decode follows encoding/json, except that time.Time targets accept
// every form above (naive means UTC), []byte targets take a string's UTF-8
// bytes, and both also accept kombu 5.3's tagged values ({"__type__":
// "datetime" | "date" | "bytes" | "base64", "__value__": ...}), so that
// bodies from newer Celery decode too. Into an `any`, numbers are float64 as
// with encoding/json: decode into int64/uint64 or json.Number to keep
// integers beyond 2^53 exact (ToJSON and FromJSON always keep them).
//
// # msgpack, YAML
//
// See the comments of msgpack.go and yaml.go: msgpack is
// github.com/vmihailenco/msgpack/v5 with kombu's str/bin split and a
// bounded reader of our own; YAML is decoded by github.com/goccy/go-yaml
// behind depth and alias guards and written by our own emitter in a form
// PyYAML (YAML 1.1) reads back exactly.
//
// # Safety
//
// Every decoder rejects bad input with an error wrapping ErrDecode: no
// panic, no unbounded work or memory (nesting is bounded; msgpack lengths
// must fit the body; YAML aliases may not expand a document beyond 2^20
// nodes). Pickle is never decoded.
//
// Serializer and Accept values are immutable and safe for concurrent use.
package serializer
