package control

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
)

// Message is one remote-control command, reply or event batch as it
// travels on a Bus: a serialized body and the few headers kombu's mailbox
// and Celery's event dispatcher set.
//
// Ownership: a Bus's Publish methods only read a Message during the call.
// A Message handed to a listener callback is the callback's for the
// duration of the call; Body aliases memory the bus may reuse afterwards,
// so copy what you keep.
type Message struct {
	// Body is the serialized body (JSON unless ContentType says otherwise).
	Body []byte
	// ContentType is the body's MIME type; "" means application/json.
	ContentType string
	// Headers are the message headers.
	Headers Headers
	// Transient selects delivery_mode 1 (replies, events) instead of 2
	// (commands).
	Transient bool
	// Exchange and RoutingKey tell where a received message was sent
	// (filled by the bus on receipt; ignored when publishing).
	Exchange, RoutingKey string
}

// Headers are the headers remote control and events use. Each is written
// only when set, in this order: ticket, hostname, clock, expires, which
// is the order kombu writes them in for commands ({"clock", "expires"}),
// replies ({"ticket", "clock"}) and events ({"hostname"}).
type Headers struct {
	// Ticket pairs a reply with its command ("" = absent).
	Ticket string
	// Hostname is an event sender's node name ("" = absent).
	Hostname string
	// Clock is the sender's Lamport clock (0 = absent).
	Clock int64
	// Expires is a command's expiry (Unix seconds; 0 = none), written
	// when HasExpires is set.
	Expires    float64
	HasExpires bool
}

func (m *Message) contentType() string {
	if m.ContentType == "" {
		return "application/json"
	}
	return m.ContentType
}

func (m *Message) contentEncoding() string {
	switch m.contentType() {
	case "application/x-msgpack", "application/data", "application/x-python-serialize":
		return "binary"
	}
	return "utf-8"
}

func (m *Message) deliveryMode() uint8 {
	if m.Transient {
		return 1
	}
	return 2
}

// appendHeaders appends h as a JSON object.
func appendHeaders(dst []byte, h *Headers) []byte {
	dst = append(dst, '{')
	sep := false
	field := func(k string) {
		if sep {
			dst = append(dst, ", "...)
		}
		sep = true
		dst = appendString(dst, k)
		dst = append(dst, ": "...)
	}
	if h.Ticket != "" {
		field("ticket")
		dst = appendString(dst, h.Ticket)
	}
	if h.Hostname != "" {
		field("hostname")
		dst = appendString(dst, h.Hostname)
	}
	if h.Clock != 0 {
		field("clock")
		dst = strconv.AppendInt(dst, h.Clock, 10)
	}
	if h.HasExpires {
		field("expires")
		dst = AppendFloat(dst, h.Expires)
	}
	return append(dst, '}')
}

// appendEnvelope appends m as kombu's Redis envelope (celery-wire.md §3.1),
// in kombu's key order, sent to exchange with routingKey.
func appendEnvelope(dst []byte, m *Message, exchange, routingKey string) []byte {
	dst = append(dst, `{"body": "`...)
	n := base64.StdEncoding.EncodedLen(len(m.Body))
	dst = append(dst, make([]byte, n)...)
	base64.StdEncoding.Encode(dst[len(dst)-n:], m.Body)
	dst = append(dst, `", "content-encoding": `...)
	dst = appendString(dst, m.contentEncoding())
	dst = append(dst, `, "content-type": `...)
	dst = appendString(dst, m.contentType())
	dst = append(dst, `, "headers": `...)
	dst = appendHeaders(dst, &m.Headers)
	dst = append(dst, `, "properties": {"delivery_mode": `...)
	dst = strconv.AppendUint(dst, uint64(m.deliveryMode()), 10)
	dst = append(dst, `, "delivery_info": {"exchange": `...)
	dst = appendString(dst, exchange)
	dst = append(dst, `, "routing_key": `...)
	dst = appendString(dst, routingKey)
	dst = append(dst, `}, "priority": 0, "body_encoding": "base64", "delivery_tag": "`...)
	dst = codec.AppendUUID(dst)
	return append(dst, `"}}`...)
}

// maxEnvelope bounds the envelopes decodeEnvelope accepts.
const maxEnvelope = 16 << 20

type envelope struct {
	Body            string         `json:"body"`
	ContentType     string         `json:"content-type"`
	ContentEncoding string         `json:"content-encoding"`
	Headers         map[string]any `json:"headers"`
	Properties      struct {
		BodyEncoding string `json:"body_encoding"`
		DeliveryInfo struct {
			Exchange   string `json:"exchange"`
			RoutingKey string `json:"routing_key"`
		} `json:"delivery_info"`
		DeliveryMode int `json:"delivery_mode"`
	} `json:"properties"`
}

// decodeEnvelope fills m from kombu's Redis envelope in src. m.Body is
// newly allocated.
func decodeEnvelope(src []byte, m *Message) error {
	if len(src) > maxEnvelope {
		return fmt.Errorf("%w: envelope of %d bytes exceeds %d", ErrBadMessage, len(src), maxEnvelope)
	}
	var e envelope
	if err := json.Unmarshal(src, &e); err != nil {
		return fmt.Errorf("%w: envelope: %v", ErrBadMessage, err)
	}
	*m = Message{ContentType: e.ContentType, Transient: e.Properties.DeliveryMode == 1,
		Exchange: e.Properties.DeliveryInfo.Exchange, RoutingKey: e.Properties.DeliveryInfo.RoutingKey}
	switch e.Properties.BodyEncoding {
	case "base64":
		b, err := base64.StdEncoding.DecodeString(e.Body)
		if err != nil {
			return fmt.Errorf("%w: envelope body: %v", ErrBadMessage, err)
		}
		m.Body = b
	case "":
		m.Body = []byte(e.Body)
	default:
		return fmt.Errorf("%w: body_encoding %q", ErrBadMessage, e.Properties.BodyEncoding)
	}
	headersFrom(&m.Headers, func(k string) (any, bool) { v, ok := e.Headers[k]; return v, ok })
	return nil
}

// headersFrom reads the headers this package knows from a header table,
// tolerating the integer and float types the brokers' decoders produce.
func headersFrom(h *Headers, get func(string) (any, bool)) {
	if v, ok := get("ticket"); ok {
		h.Ticket, _ = v.(string)
	}
	if v, ok := get("hostname"); ok {
		h.Hostname, _ = v.(string)
	}
	if v, ok := get("clock"); ok {
		if f, ok := number(v); ok && f > 0 && f < math.MaxInt64 {
			h.Clock = int64(f)
		}
	}
	if v, ok := get("expires"); ok {
		if f, ok := number(v); ok {
			h.Expires, h.HasExpires = f, true
		}
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// AppendFloat appends f as Python's json.dumps writes a float (its
// repr): always with a fraction or an exponent (2.0, 1795494751.5,
// 1e+16), so that Python reads a float back, never an int. NaN and
// infinities, which are not JSON, become null.
func AppendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters, quotes and
// backslashes are escaped; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendString appends s as a JSON string (see appendString); events use
// it to encode without reflection.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// NewUUID returns a random (version 4) UUID string.
func NewUUID() string { return codec.NewUUID() }
