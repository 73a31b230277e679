package codec

import (
	"encoding/base64"
	"strconv"
)

// MaxV1Body bounds the decompressed size of a protocol-1 body, which the
// decoders must read to find the task (protocol-2 bodies are not read by
// the decoders; bound them with BodyJSON's limit).
const MaxV1Body = 64 << 20

// AppendRedisEnvelope appends m as the JSON envelope kombu's Redis
// transport stores in a list (celery-wire.md §3.1): base64 body,
// "content-encoding", "content-type", the Celery headers and the
// properties with delivery_info, body_encoding "base64" and delivery_tag.
// Keys, order and separators are those of the Python client, so the output
// is byte-comparable with what Celery writes.
//
// Defaults for empty fields: Lang "go", ContentType application/json,
// ContentEncoding utf-8 (binary for msgpack), CorrelationID and RootID the
// task id, DeliveryMode 2, ReplyTo "", and a fresh UUID4 delivery tag when
// m.DeliveryTag is empty (m is not modified). Extra headers are written
// after the standard ones, then compression, then "redelivered" markers
// when m.Redelivered (as kombu writes a restored message). It does not
// allocate beyond growing dst.
func AppendRedisEnvelope(dst []byte, m *Message) []byte {
	dst = append(dst, `{"body": "`...)
	dst = base64.StdEncoding.AppendEncode(dst, m.Body)
	dst = append(dst, `", "content-encoding": `...)
	if len(m.ContentEncoding) != 0 {
		dst = appendString(dst, m.ContentEncoding)
	} else {
		dst = appendString(dst, defaultEncoding(m.ContentType))
	}
	dst = append(dst, `, "content-type": `...)
	if len(m.ContentType) != 0 {
		dst = appendString(dst, m.ContentType)
	} else {
		dst = appendString(dst, ContentTypeJSON)
	}
	dst = append(dst, `, "headers": `...)
	dst = appendHeadersJSON(dst, m)
	dst = append(dst, `, "properties": {"correlation_id": `...)
	if len(m.CorrelationID) == 0 {
		dst = appendString(dst, m.ID)
	} else {
		dst = appendString(dst, m.CorrelationID)
	}
	dst = append(dst, `, "reply_to": `...)
	dst = appendString(dst, m.ReplyTo)
	dst = append(dst, `, "delivery_mode": `...)
	dst = strconv.AppendUint(dst, uint64(deliveryModeOf(m)), 10)
	if m.HasExpiration {
		dst = append(dst, `, "expiration": "`...)
		dst = strconv.AppendInt(dst, m.Expiration, 10)
		dst = append(dst, '"')
	}
	dst = append(dst, `, "delivery_info": {"exchange": `...)
	dst = appendString(dst, m.Exchange)
	dst = append(dst, `, "routing_key": `...)
	dst = appendString(dst, m.RoutingKey)
	if m.Redelivered {
		dst = append(dst, `, "redelivered": true`...)
	}
	dst = append(dst, `}, "priority": `...)
	dst = strconv.AppendUint(dst, uint64(m.Priority), 10)
	dst = append(dst, `, "body_encoding": "base64", "delivery_tag": `...)
	if len(m.DeliveryTag) == 0 {
		var tag [36]byte
		putUUID4(&tag)
		dst = appendString(dst, tag[:])
	} else {
		dst = appendString(dst, m.DeliveryTag)
	}
	return append(dst, "}}"...)
}

// defaultEncoding is the content encoding kombu pairs with a content
// type (§9.1): binary for msgpack and pickle, utf-8 otherwise.
func defaultEncoding(contentType []byte) string {
	switch string(contentType) {
	case ContentTypeMsgpack, ContentTypePickle:
		return EncodingBinary
	}
	return EncodingUTF8
}

func deliveryModeOf(m *Message) uint8 {
	if m.DeliveryMode == 0 {
		return 2
	}
	return m.DeliveryMode
}

// DecodeRedisEnvelope resets m and fills it from src, one kombu Redis
// envelope (celery-wire.md §3.1).
//
// Header and property values are views into src (or into m's scratch when
// a string had escapes); the body is base64-decoded into m's scratch, or
// taken as is when properties.body_encoding is absent. src must stay
// unmodified while m is in use. In steady state (m reused, similar
// messages) it does not allocate.
//
// A message whose headers have a "task" is protocol 2: task and id are
// required, the body is not read. Otherwise the body is decoded (bounded
// by MaxV1Body) and must be a protocol-1 task dict: m is filled from it and
// m.Body becomes the equivalent protocol-2 JSON body, m.Protocol = 1.
// Anything else is ErrUnknownMessage.
//
// Unknown top-level keys and properties are ignored (Celery adds some on
// retries); unknown headers are kept in m.ExtraHeaders. The
// "redelivered" markers kombu adds when it restores a message set
// m.Redelivered.
func DecodeRedisEnvelope(src []byte, m *Message) error {
	m.Reset()
	m.Protocol = 2
	m.reserve(len(src))
	s := scanner{src: src}
	if c := s.peek(); c != '{' {
		if c == 0 {
			return fieldErr(s.err(), "envelope", "")
		}
		return &DecodeError{Part: "envelope", Err: ErrFieldType, Detail: "want object, got " + kindName(c)}
	}
	_ = s.open('{')
	var (
		body         []byte
		bodyEsc      bool
		bodyKind     byte
		bodyEncoding []byte
		headers      []byte
		hasTask      bool
		hasExtra     bool
		hasProps     bool
		hasTag       bool
		kb           keyBuf
	)
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return fieldErr(err, "envelope", "")
		}
		if done {
			break
		}
		switch string(unescapeKey(&kb, key, esc)) {
		case "body":
			bodyKind = s.peek()
			switch bodyKind {
			case '"':
				body, bodyEsc, err = s.str()
			case 'n':
				_, err = s.skip()
			default:
				if bodyKind == 0 {
					return fieldErr(s.err(), "envelope", "body")
				}
				return typeError("envelope", "body", "string", bodyKind)
			}
			err = fieldErr(err, "envelope", "body")
		case "content-type":
			m.ContentType, err = m.strField(&s, "envelope", "content-type")
		case "content-encoding":
			m.ContentEncoding, err = m.strField(&s, "envelope", "content-encoding")
		case "headers":
			headers, hasTask, hasExtra, err = m.decodeHeadersJSON(&s)
		case "properties":
			hasProps = true
			bodyEncoding, hasTag, err = m.decodePropertiesJSON(&s)
		case "redelivered":
			var r bool
			r, err = boolField(&s, "envelope", "redelivered")
			m.Redelivered = m.Redelivered || r
		default:
			_, err = s.skip()
			err = fieldErr(err, "envelope", "")
		}
		if err != nil {
			return err
		}
	}
	if err := s.end(); err != nil {
		return fieldErr(err, "envelope", "")
	}
	if !hasProps || !hasTag {
		return &DecodeError{Part: "properties", Field: "delivery_tag", Err: ErrMissingField}
	}
	if hasExtra {
		m.collectExtra(headers)
	}
	switch {
	case len(bodyEncoding) == 0:
		if bodyKind == '"' {
			m.Body = m.ownUnescaped(body, bodyEsc)
		}
	case string(bodyEncoding) == "base64":
		if bodyKind == '"' {
			if err := m.decodeBase64Body(body, bodyEsc); err != nil {
				return err
			}
		}
	default:
		return &DecodeError{Part: "properties", Field: "body_encoding", Err: ErrUnsupportedBodyEncoding,
			Detail: "unsupported body encoding " + quoteTrunc(bodyEncoding)}
	}
	if !hasTask {
		return m.fromV1()
	}
	return m.checkRequired("headers")
}

// checkRequired enforces the two headers Celery's worker needs.
func (m *Message) checkRequired(part string) error {
	if len(m.Task) == 0 {
		return &DecodeError{Part: part, Field: "task", Err: ErrMissingField}
	}
	if len(m.ID) == 0 {
		return &DecodeError{Part: part, Field: "id", Err: ErrMissingField}
	}
	return nil
}

func (m *Message) decodeBase64Body(raw []byte, esc bool) error {
	if esc {
		raw = m.ownUnescaped(raw, esc)
	}
	n := base64.StdEncoding.DecodedLen(len(raw))
	m.reserve(n)
	start := len(m.scratch)
	out := m.scratch[start : start+n]
	w, err := base64.StdEncoding.Decode(out, raw)
	if err != nil {
		return &DecodeError{Part: "envelope", Field: "body", Err: ErrBase64, Detail: "invalid base64: " + err.Error()}
	}
	m.scratch = m.scratch[:start+w]
	m.Body = m.scratch[start : start+w : start+w]
	return nil
}

// decodePropertiesJSON reads the envelope's properties object.
func (m *Message) decodePropertiesJSON(s *scanner) (bodyEncoding []byte, hasTag bool, err error) {
	const part = "properties"
	switch c := s.peek(); c {
	case '{':
	case 0:
		return nil, false, fieldErr(s.err(), part, "")
	default:
		return nil, false, typeError("envelope", part, "object", c)
	}
	_ = s.open('{')
	var kb keyBuf
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return nil, false, fieldErr(err, part, "")
		}
		if done {
			break
		}
		var n int64
		switch string(unescapeKey(&kb, key, esc)) {
		case "correlation_id":
			m.CorrelationID, err = m.strField(s, part, "correlation_id")
		case "reply_to":
			m.ReplyTo, err = m.strField(s, part, "reply_to")
		case "delivery_mode":
			n, _, err = smallIntField(s, part, "delivery_mode", 0, 255)
			m.DeliveryMode = uint8(n)
		case "priority":
			n, _, err = smallIntField(s, part, "priority", 0, 255)
			m.Priority = uint8(n)
		case "expiration":
			m.Expiration, m.HasExpiration, err = m.expirationField(s)
		case "delivery_info":
			err = m.decodeDeliveryInfo(s)
		case "body_encoding":
			bodyEncoding, err = m.strField(s, part, "body_encoding")
		case "delivery_tag":
			m.DeliveryTag, err = m.strField(s, part, "delivery_tag")
			hasTag = len(m.DeliveryTag) != 0
		default:
			_, err = s.skip()
			err = fieldErr(err, part, "")
		}
		if err != nil {
			return nil, false, err
		}
	}
	return bodyEncoding, hasTag, nil
}

// expirationField reads the AMQP expiration property: milliseconds as a
// decimal string (kombu writes str(int(seconds*1000))), a number, or null.
func (m *Message) expirationField(s *scanner) (int64, bool, error) {
	const part, field = "properties", "expiration"
	switch c := s.peek(); {
	case c == '"':
		b, err := m.strField(s, part, field)
		if err != nil {
			return 0, false, err
		}
		n, err := parseExpiration(b)
		if err != nil {
			return 0, false, &DecodeError{Part: part, Field: field, Err: ErrBadValue, Detail: err.Error()}
		}
		return n, true, nil
	case c == 'n':
		_, _, err := intField(s, part, field)
		return 0, false, err
	default:
		f, _, err := floatField(s, part, field)
		if err == nil && f < 0 {
			err = &DecodeError{Part: part, Field: field, Err: ErrBadValue, Detail: "negative expiration"}
		}
		return int64(f), err == nil, err
	}
}

type expirationError string

func (e expirationError) Error() string { return string(e) }

// parseExpiration reads a non-negative millisecond count; a fractional
// value is truncated.
func parseExpiration(b []byte) (int64, error) {
	if n, ok := parseInt(b); ok && n >= 0 {
		return n, nil
	}
	f, ok := parseFloat(b)
	if !ok || f < 0 || f > 9e18 || f != f {
		return 0, expirationError("want non-negative milliseconds, got " + quoteTrunc(b))
	}
	return int64(f), nil
}

func (m *Message) decodeDeliveryInfo(s *scanner) error {
	const part = "properties.delivery_info"
	switch c := s.peek(); c {
	case 'n':
		_, err := s.skip()
		return fieldErr(err, part, "")
	case '{':
	case 0:
		return fieldErr(s.err(), part, "")
	default:
		return typeError("properties", "delivery_info", "object", c)
	}
	_ = s.open('{')
	var kb keyBuf
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return fieldErr(err, part, "")
		}
		if done {
			return nil
		}
		switch string(unescapeKey(&kb, key, esc)) {
		case "exchange":
			m.Exchange, err = m.strField(s, part, "exchange")
		case "routing_key":
			m.RoutingKey, err = m.strField(s, part, "routing_key")
		case "redelivered":
			var r bool
			r, err = boolField(s, part, "redelivered")
			m.Redelivered = m.Redelivered || r
		default:
			_, err = s.skip()
			err = fieldErr(err, part, "")
		}
		if err != nil {
			return err
		}
	}
}
