package codec

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/celerity-go/celerity/codec/compress"
	"github.com/celerity-go/celerity/codec/serializer"
	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// BodyJSON returns m's body as JSON text: m.Body itself for an
// uncompressed JSON body (no copy, no allocation), else the body
// decompressed (per m.Compression, with codec/compress) and transcoded
// from msgpack or YAML (with codec/serializer), stored in m's scratch
// space. Pickle is refused (ErrUnsupportedContentType, also matching
// serializer.ErrContentDisallowed). An empty ContentType means JSON, as the
// encoders write it.
//
// limit > 0 bounds the body as received and after decompression
// (ErrTooLarge, also matching compress.ErrTooLarge); limit <= 0 leaves the
// received body unbounded and decompression bounded by
// compress.DefaultLimit. The result is cached until m is Reset and must not
// be modified.
func (m *Message) BodyJSON(limit int64) ([]byte, error) {
	if m.bodyJSON != nil {
		return m.bodyJSON, nil
	}
	body := m.Body
	if limit > 0 && int64(len(body)) > limit {
		return nil, tooLarge("body", limit)
	}
	if len(m.Compression) != 0 {
		c, ok := compress.Lookup(unsafeconv.String(m.Compression))
		if !ok {
			return nil, &DecodeError{Part: "headers", Field: "compression", Err: ErrUnsupportedCompression,
				Detail: "unsupported compression " + quoteTrunc(m.Compression)}
		}
		start := len(m.scratch)
		out, err := c.Decompress(m.scratch, body, limit)
		if err != nil {
			if errors.Is(err, compress.ErrTooLarge) {
				err = fmt.Errorf("%w: %w", ErrTooLarge, err)
			}
			return nil, &DecodeError{Part: "body", Field: "compression", Err: err, Detail: err.Error()}
		}
		m.scratch = out
		body = out[start:len(out):len(out)]
	}
	switch string(m.ContentType) {
	case "", ContentTypeJSON:
		if body == nil {
			body = []byte{}
		}
		if len(m.Compression) != 0 {
			m.bodyJSON = body // decompressed once
		}
		// m.Body itself is not cached: a worker reading it would write
		// a cache line of a message that its producer, on another core,
		// rebuilds (AcquireMessageToOverwrite).
		return body, nil
	case ContentTypeMsgpack, ContentTypeYAML:
		s, _ := serializer.ByContentType(m.ContentType)
		start := len(m.scratch)
		out, err := s.ToJSON(m.scratch, body)
		if err != nil {
			return nil, &DecodeError{Part: "body", Err: err, Detail: err.Error()}
		}
		if limit > 0 && int64(len(out)-start) > limit {
			return nil, tooLarge("body", limit)
		}
		m.scratch = out
		m.bodyJSON = out[start:len(out):len(out)]
		return m.bodyJSON, nil
	case ContentTypePickle:
		return nil, &DecodeError{Part: "properties", Field: "content_type",
			Err:    fmt.Errorf("%w: %w", ErrUnsupportedContentType, serializer.ErrContentDisallowed),
			Detail: "pickle is never decoded (it can run arbitrary code)"}
	}
	return nil, contentTypeError(m.ContentType)
}

func tooLarge(part string, limit int64) error {
	return &DecodeError{Part: part, Err: ErrTooLarge, Detail: "larger than the limit of " + strconv.FormatInt(limit, 10) + " bytes"}
}

func contentTypeError(ct []byte) error {
	return &DecodeError{Part: "properties", Field: "content_type", Err: ErrUnsupportedContentType,
		Detail: "unsupported content type " + quoteTrunc(ct)}
}
