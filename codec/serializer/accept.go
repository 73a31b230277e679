package serializer

import (
	"fmt"
	"strings"

	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// Accept is the set of content types a receiver decodes: Celery's
// accept_content (and result_accept_content). application/data and
// application/text, and a message without a content type, are always
// accepted, as kombu trusts them. The zero Accept accepts only those;
// DefaultAccept is Celery's default, ["json"]. Accept is immutable and safe
// for concurrent use.
type Accept struct {
	known uint8    // bit per kind
	other []string // accepted content types celerity has no serializer for
}

// DefaultAccept is Celery's default accept_content: ["json"].
var DefaultAccept = Accept{known: 1 << kindJSON}

// NewAccept builds an Accept from names and content types as Celery's
// accept_content lists them ("json", "msgpack", "yaml", or a type such as
// "application/json"). Like kombu, a name without a '/' must be a known
// serializer (ErrUnknownContentType otherwise), while any string with a '/'
// is taken as a content type. pickle, by name or type, is refused with
// ErrContentDisallowed: celerity never decodes it.
func NewAccept(names ...string) (Accept, error) {
	var a Accept
	for _, n := range names {
		s, ok := ByName(n)
		if !strings.Contains(n, "/") {
			if !ok {
				return Accept{}, fmt.Errorf("serializer: accept %q: %w: no serializer has that name", n, ErrUnknownContentType)
			}
		} else {
			s, ok = ByContentType([]byte(n))
		}
		switch {
		case ok && s.kind == kindPickle:
			return Accept{}, fmt.Errorf("serializer: accept %q: %w", n, errPickle)
		case ok:
			a.known |= 1 << s.kind
		default:
			a.other = append(a.other, strings.ToLower(n))
		}
	}
	return a, nil
}

// Check returns nil when a message with this content_type may be decoded,
// and otherwise ErrContentDisallowed wrapped with the type, as Celery's
// worker refuses it ("Refusing to deserialize untrusted content..."; the
// Python worker rejects such a message without requeue). Types compare
// case-insensitively. It does not allocate when it returns nil.
func (a Accept) Check(contentType []byte) error {
	if len(contentType) == 0 {
		return nil // kombu reads it as application/data
	}
	if s := byContentType(contentType); s != nil {
		if s.kind == kindRaw || s.kind == kindText || a.known&(1<<s.kind) != 0 {
			return nil
		}
		return fmt.Errorf("serializer: %w: refusing to deserialize untrusted content of type %s (%s); accept it in accept_content", ErrContentDisallowed, s.Name, s.ContentType)
	}
	ct := unsafeconv.String(contentType)
	for _, o := range a.other {
		if strings.EqualFold(o, ct) {
			return nil
		}
	}
	return fmt.Errorf("serializer: %w: refusing to deserialize untrusted content of type %q", ErrContentDisallowed, contentType)
}
