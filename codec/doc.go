// Package codec reads and writes Celery's wire formats: task messages
// (protocol v2, and v1 on input), the kombu Redis envelope, the AMQP
// property/header mapping, result records, signatures, and the time formats
// Celery uses. It is a leaf: it imports nothing of celerity but internal/
// and its own sub-packages.
//
// The reference is ../shared/celery-wire.md (Celery 5.2.6 / kombu 5.2.4);
// testdata/golden holds real messages and records captured from that
// Celery, and the tests check every field of each.
//
// # Hot path
//
// Encoders append into a caller-owned dst and return it; decoders fill a
// caller-owned *Message (or *Result) that is Reset and reused, and its
// byte-slice fields are views into the decoded buffer (or into the
// Message's own scratch space when a value had to be unescaped or base64
// decoded). JSON is read by a small hand-written scanner, not by
// reflection. In steady state these do not allocate (enforced by the
// TestAllocs* tests): AppendRedisEnvelope, DecodeRedisEnvelope of every
// dispatch header, BodyJSON of a plain JSON body, SplitJSONBody,
// AppendJSONBody, NewID, AppendResultJSON, DecodeResultJSON,
// AppendExceptionJSON, AppendISOTime and ParseISOTime. The AMQP mapping,
// protocol v1 conversion, signatures, embeds and result tuples allocate.
//
// Output is byte-compatible with Python: the Redis envelope, headers,
// result records and signatures use kombu's key order, Python's ", " and
// ": " separators and json.dumps' ASCII escapes, so a message decoded from
// Python and encoded again is byte-identical (golden tests check it).
//
// # Errors
//
// Decoders return a *DecodeError naming the part and field at fault
// ("codec: headers.retries: want integer, got string") and wrapping one of
// the Err* sentinels. Input is bounded: nesting at MaxDepth, protocol-1
// bodies at MaxV1Body, decompression at the caller's limit.
//
// # Concurrency
//
// Nothing here is safe for concurrent use unless it says so
// (AcquireMessage/ReleaseMessage are).
//
// Serializers (json, msgpack, yaml) live in codec/serializer and
// compressors in codec/compress; BodyJSON uses both.
package codec
