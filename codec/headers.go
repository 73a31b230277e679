package codec

import (
	"strconv"
	"time"
)

// knownHeader reports whether a protocol-2 header has a Message field;
// everything else is carried in ExtraHeaders.
func knownHeader(key []byte) bool {
	switch string(key) {
	case "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
		"retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr",
		"origin", "ignore_result", "compression", "redelivered":
		return true
	}
	return false
}

// decodeHeadersJSON reads the Celery headers object (or null) at the
// scanner into m. It reports whether a "task" header was present and
// whether there were headers without a Message field (then the caller
// collects them with collectExtra from the returned raw object).
func (m *Message) decodeHeadersJSON(s *scanner) (raw []byte, hasTask, hasExtra bool, err error) {
	const part = "headers"
	switch c := s.peek(); c {
	case 'n':
		if s.null() {
			return nil, false, false, nil
		}
		return nil, false, false, fieldErr(s.err(), part, "")
	case '{':
	case 0:
		return nil, false, false, fieldErr(s.err(), part, "")
	default:
		return nil, false, false, typeError("envelope", part, "object", c)
	}
	start := s.pos
	if err := s.open('{'); err != nil {
		return nil, false, false, fieldErr(err, part, "")
	}
	var kb keyBuf
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return nil, false, false, fieldErr(err, part, "")
		}
		if done {
			break
		}
		key = unescapeKey(&kb, key, esc)
		var n int64
		var null bool
		switch string(key) {
		case "lang":
			m.Lang, err = m.strField(s, part, "lang")
		case "task":
			m.Task, err = m.strField(s, part, "task")
			hasTask = true
		case "id":
			m.ID, err = m.strField(s, part, "id")
		case "shadow":
			m.Shadow, err = m.strField(s, part, "shadow")
		case "eta":
			m.ETA, err = m.timeField(s, part, "eta")
		case "expires":
			m.Expires, err = m.timeField(s, part, "expires")
		case "group":
			m.Group, err = m.strField(s, part, "group")
		case "group_index":
			n, null, err = smallIntField(s, part, "group_index", 0, 1<<31-1)
			m.GroupIndex, m.HasGroupIndex = int(n), !null
		case "retries":
			n, _, err = smallIntField(s, part, "retries", 0, 1<<31-1)
			m.Retries = int(n)
		case "timelimit":
			m.TimeLimit, err = timeLimitField(s, part, "timelimit")
		case "root_id":
			m.RootID, err = m.strField(s, part, "root_id")
		case "parent_id":
			m.ParentID, err = m.strField(s, part, "parent_id")
		case "argsrepr":
			m.ArgsRepr, err = m.strField(s, part, "argsrepr")
		case "kwargsrepr":
			m.KwargsRepr, err = m.strField(s, part, "kwargsrepr")
		case "origin":
			m.Origin, err = m.strField(s, part, "origin")
		case "ignore_result":
			m.IgnoreResult, err = boolField(s, part, "ignore_result")
		case "compression":
			m.Compression, err = m.strField(s, part, "compression")
		case "redelivered":
			var r bool
			r, err = boolField(s, part, "redelivered")
			m.Redelivered = m.Redelivered || r
		default:
			hasExtra = true
			if _, err = s.skip(); err != nil {
				err = fieldErr(err, part, string(key))
			}
		}
		if err != nil {
			return nil, false, false, err
		}
	}
	return s.src[start:s.pos:s.pos], hasTask, hasExtra, nil
}

// collectExtra copies the members of the headers object hdr that have no
// Message field into scratch as one JSON object and points ExtraHeaders at
// it. hdr was validated by decodeHeadersJSON.
func (m *Message) collectExtra(hdr []byte) {
	s := scanner{src: hdr}
	if s.open('{') != nil {
		return
	}
	m.reserve(len(hdr) + 2)
	start := len(m.scratch)
	m.scratch = append(m.scratch, '{')
	n := 0
	var kb keyBuf
	for first := true; ; first = false {
		kstart := s.pos
		key, esc, done, err := s.member(first)
		if err != nil || done {
			break
		}
		quoted := s.src[kstart:s.pos]
		v, err := s.skip()
		if err != nil {
			break
		}
		if knownHeader(unescapeKey(&kb, key, esc)) {
			continue
		}
		if n > 0 {
			m.scratch = append(m.scratch, ", "...)
		}
		// quoted is `[,] "key":` plus whitespace; keep just the key string.
		q := trimToKey(quoted)
		m.scratch = append(m.scratch, q...)
		m.scratch = append(m.scratch, ": "...)
		m.scratch = append(m.scratch, v...)
		n++
	}
	m.scratch = append(m.scratch, '}')
	m.ExtraHeaders = m.scratch[start:len(m.scratch):len(m.scratch)]
}

// trimToKey returns the quoted key inside `, "key" :` text.
func trimToKey(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] != '"' {
		i++
	}
	j := len(b) - 1
	for j > i && b[j] != '"' {
		j--
	}
	return b[i : j+1]
}

// appendHeadersJSON writes the protocol-2 headers object in the order
// Celery's as_task_v2 writes them, then ExtraHeaders' members, then
// compression, as kombu appends it.
func appendHeadersJSON(dst []byte, m *Message) []byte {
	dst = append(dst, `{"lang": `...)
	if len(m.Lang) == 0 {
		dst = append(dst, `"go"`...)
	} else {
		dst = appendString(dst, m.Lang)
	}
	dst = append(dst, `, "task": `...)
	dst = appendString(dst, m.Task)
	dst = append(dst, `, "id": `...)
	dst = appendString(dst, m.ID)
	dst = append(dst, `, "shadow": `...)
	dst = appendStringOrNull(dst, m.Shadow)
	dst = append(dst, `, "eta": `...)
	dst = appendTimeOrNull(dst, m.ETA)
	dst = append(dst, `, "expires": `...)
	dst = appendTimeOrNull(dst, m.Expires)
	dst = append(dst, `, "group": `...)
	dst = appendStringOrNull(dst, m.Group)
	dst = append(dst, `, "group_index": `...)
	if m.HasGroupIndex {
		dst = strconv.AppendInt(dst, int64(m.GroupIndex), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `, "retries": `...)
	dst = strconv.AppendInt(dst, int64(m.Retries), 10)
	dst = append(dst, `, "timelimit": [`...)
	dst = appendLimit(dst, m.TimeLimit.Hard, m.TimeLimit.HasHard)
	dst = append(dst, ", "...)
	dst = appendLimit(dst, m.TimeLimit.Soft, m.TimeLimit.HasSoft)
	dst = append(dst, `], "root_id": `...)
	if len(m.RootID) == 0 {
		dst = appendString(dst, m.ID)
	} else {
		dst = appendString(dst, m.RootID)
	}
	dst = append(dst, `, "parent_id": `...)
	dst = appendStringOrNull(dst, m.ParentID)
	dst = append(dst, `, "argsrepr": `...)
	dst = appendString(dst, m.ArgsRepr)
	dst = append(dst, `, "kwargsrepr": `...)
	dst = appendString(dst, m.KwargsRepr)
	dst = append(dst, `, "origin": `...)
	dst = appendStringOrNull(dst, m.Origin)
	dst = append(dst, `, "ignore_result": `...)
	dst = appendBool(dst, m.IgnoreResult)
	dst = appendExtraMembers(dst, m.ExtraHeaders)
	if len(m.Compression) != 0 {
		dst = append(dst, `, "compression": `...)
		dst = appendString(dst, m.Compression)
	}
	if m.Redelivered {
		dst = append(dst, `, "redelivered": true`...)
	}
	return append(dst, '}')
}

// appendExtraMembers appends the members of the JSON object extra (if it
// has any) as ", member, member".
func appendExtraMembers(dst, extra []byte) []byte {
	i, j := 0, len(extra)-1
	for i <= j && extra[i] != '{' {
		i++
	}
	for j > i && extra[j] != '}' {
		j--
	}
	if i >= j {
		return dst
	}
	inner := trimSpace(extra[i+1 : j])
	if len(inner) == 0 {
		return dst
	}
	dst = append(dst, ", "...)
	return append(dst, inner...)
}

func appendTimeOrNull(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = AppendISOTime(dst, t)
	return append(dst, '"')
}

func appendLimit(dst []byte, f float64, ok bool) []byte {
	if !ok {
		return append(dst, "null"...)
	}
	return appendNumber(dst, f)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
