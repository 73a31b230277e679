package codec

import "time"

// Message is one Celery task message in protocol v2 form: AMQP-style
// properties, the Celery headers, delivery information and the serialized
// body. A protocol v1 message is converted to this form when decoded.
//
// Ownership: byte-slice fields are views. After a Decode* call they alias
// the source buffer passed to the decoder, or m's own scratch buffer; the
// source must stay unmodified while m is in use. A producer may point them
// at any memory that outlives the encode or publish call. A Message is not
// safe for concurrent use; Reset it (or use AcquireMessage/ReleaseMessage)
// before reuse.
type Message struct {
	// Headers (celery-wire.md §1.3).
	Lang          []byte    // "py" from Python clients; "go" from celerity
	Task          []byte    // registered task name; required
	ID            []byte    // task id; required
	Shadow        []byte    // alternative name for logs; empty = none
	ETA           time.Time // earliest execution time; zero = none
	Expires       time.Time // expiry time; zero = none
	Group         []byte    // id of the group/chord this task belongs to
	GroupIndex    int       // position in the group; valid if HasGroupIndex
	HasGroupIndex bool
	Retries       int
	TimeLimit     TimeLimit // header "timelimit": [hard, soft]
	RootID        []byte
	ParentID      []byte
	ArgsRepr      []byte
	KwargsRepr    []byte
	Origin        []byte // sender's node name, e.g. "gen123@host"
	IgnoreResult  bool
	Compression   []byte // mime type of the body compressor (§9.2); empty = none
	// ExtraHeaders is a JSON object ("{...}") of headers this type has no
	// field for (custom apply_async headers, stamps...), or empty. It is
	// carried through unchanged.
	ExtraHeaders []byte

	// Properties (§1.2).
	CorrelationID   []byte
	ReplyTo         []byte
	ContentType     []byte // e.g. "application/json"
	ContentEncoding []byte // "utf-8" or "binary"
	DeliveryMode    uint8  // 2 = persistent (Celery's default), 1 = transient
	Priority        uint8  // 0-9; see §3.6 for its meaning per broker
	// Expiration is the AMQP per-message TTL in milliseconds, written as a
	// decimal string on the wire; valid if HasExpiration.
	Expiration    int64
	HasExpiration bool

	// Delivery information, filled by transports on receipt.
	Exchange    []byte
	RoutingKey  []byte
	DeliveryTag []byte // kombu's per-publish UUID on Redis; empty elsewhere
	Redelivered bool

	// Body is the serialized, possibly compressed, body bytes
	// ([args, kwargs, embed] once decoded), never base64.
	Body []byte

	// Protocol is the task protocol the message arrived in (1 or 2); the
	// encoders always write 2.
	Protocol int

	scratch []byte // owned storage for unescaped strings and decoded bodies

	// Tag is the transport-private delivery handle (AMQP delivery tag,
	// memory slot), set on receipt. It is kept on the cache line of the
	// id's storage, the one line a producer rebuilding a pooled message
	// of the same shape writes (AcquireMessageToOverwrite), so that a
	// consumer setting it moves no other line between their cores.
	Tag      uint64
	idBuf    [36]byte
	tagBuf   [36]byte // NewDeliveryTag's storage
	bodyJSON []byte   // BodyJSON's cached result

	// selfContained: see MarkSelfContained. Reset clears it.
	selfContained bool
}

// TimeLimit is the "timelimit" header, [hard, soft] in seconds; a limit is
// absent (JSON null) unless its Has flag is set.
type TimeLimit struct {
	Hard, Soft       float64
	HasHard, HasSoft bool
}

// MarkSelfContained records that every view in m points into m itself
// (Own, NewID) or at small immutable memory (constants, task and queue
// names): nothing a pooled m could keep alive is worth freeing. Such a
// message is not cleared by ReleaseMessage but by the AcquireMessage that
// reuses it. The engine's producer marks the messages it builds: a message
// built on one processor and released on another is then written by the
// releasing one only where it reads it, which saves moving its cache lines
// back and forth (BenchmarkEngineMemoryNoop in engine). Setting a field of
// a marked message to other memory (a network buffer) keeps that memory
// alive while m sits in the pool; Reset clears the mark. A producer that
// sets every field itself takes such messages uncleared
// (AcquireMessageToOverwrite).
func (m *Message) MarkSelfContained() { SetValue(&m.selfContained, true) }

// Reset clears m for reuse, keeping its scratch storage.
func (m *Message) Reset() {
	scratch := m.scratch[:0]
	*m = Message{}
	m.scratch = scratch
}
