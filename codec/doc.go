// Package codec reads and writes Celery's wire formats: task messages
// (protocol v2, and v1 on input), the kombu Redis envelope, the AMQP
// property/header mapping, result records, signatures, and the time formats
// Celery uses. It is a leaf: it imports nothing of celerity but internal/.
//
// The reference is ../shared/celery-wire.md (Celery 5.2.6 / kombu 5.2.4).
//
// Hot-path rules: encoders append into a caller-owned dst and return it;
// decoders fill a caller-owned *Message that is Reset and reused, and its
// byte-slice fields are views into the decoded buffer (or into the
// Message's own scratch space when a value had to be unescaped or base64
// decoded). Nothing here is safe for concurrent use unless it says so.
//
// Serializers (json, msgpack, yaml) live in codec/serializer and
// compressors in codec/compress.
package codec
