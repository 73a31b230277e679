package codec

// fromV1 fills m from a protocol-1 body (celery-wire.md §1.8), the way
// Celery's worker converts it (celery.worker.strategy.proto1_to_proto2):
// "taskset", when present, becomes the group; callbacks, errbacks and
// chord go into embed; there is no chain. m.Body becomes the equivalent
// protocol-2 JSON body, built in scratch.
//
// Celery does not recompute argsrepr/kwargsrepr into anything we could
// reproduce (it uses Python's repr), so they stay empty. A body with
// "utc": false carries naive local times of the sender; they are read as
// UTC like every zone-less time.
func (m *Message) fromV1() error {
	const part = "body"
	body, err := m.BodyJSON(MaxV1Body)
	if err != nil {
		return err
	}
	m.bodyJSON = nil
	s := scanner{src: body}
	if s.peek() != '{' {
		return &DecodeError{Part: part, Err: ErrUnknownMessage}
	}
	_ = s.open('{')
	var (
		args, kwargs, callbacks, errbacks, chord []byte
		taskset                                  []byte
		hasTaskset, hasTask                      bool
		kb                                       keyBuf
	)
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return fieldErr(err, part, "")
		}
		if done {
			break
		}
		var n int64
		var null bool
		switch string(unescapeKey(&kb, key, esc)) {
		case "task":
			hasTask = true
			m.Task, err = m.strField(&s, part, "task")
		case "id":
			m.ID, err = m.strField(&s, part, "id")
		case "args":
			args, err = rawOfKind(&s, part, "args", '[', "array")
		case "kwargs":
			kwargs, err = rawOfKind(&s, part, "kwargs", '{', "object")
		case "callbacks":
			callbacks, err = rawOfKind(&s, part, "callbacks", '[', "array")
		case "errbacks":
			errbacks, err = rawOfKind(&s, part, "errbacks", '[', "array")
		case "chord":
			chord, err = rawOfKind(&s, part, "chord", '{', "object")
		case "group":
			m.Group, err = m.strField(&s, part, "group")
		case "taskset":
			hasTaskset = true
			taskset, err = m.strField(&s, part, "taskset")
		case "group_index":
			n, null, err = smallIntField(&s, part, "group_index", 0, 1<<31-1)
			m.GroupIndex, m.HasGroupIndex = int(n), !null
		case "retries":
			n, _, err = smallIntField(&s, part, "retries", 0, 1<<31-1)
			m.Retries = int(n)
		case "eta":
			m.ETA, err = m.timeField(&s, part, "eta")
		case "expires":
			m.Expires, err = m.timeField(&s, part, "expires")
		case "timelimit":
			m.TimeLimit, err = timeLimitField(&s, part, "timelimit")
		case "root_id":
			m.RootID, err = m.strField(&s, part, "root_id")
		case "parent_id":
			m.ParentID, err = m.strField(&s, part, "parent_id")
		case "shadow":
			m.Shadow, err = m.strField(&s, part, "shadow")
		case "lang":
			m.Lang, err = m.strField(&s, part, "lang")
		case "origin":
			m.Origin, err = m.strField(&s, part, "origin")
		default:
			_, err = s.skip()
			err = fieldErr(err, part, "")
		}
		if err != nil {
			return err
		}
	}
	if err := s.end(); err != nil {
		return fieldErr(err, part, "")
	}
	if !hasTask {
		return &DecodeError{Part: part, Err: ErrUnknownMessage}
	}
	if err := m.checkRequired(part); err != nil {
		return err
	}
	if hasTaskset {
		m.Group = taskset
	}
	m.ContentType = m.OwnString(ContentTypeJSON)
	m.ContentEncoding = m.OwnString(EncodingUTF8)
	m.Compression = nil
	start := len(m.scratch)
	m.scratch = append(m.scratch, '[')
	m.scratch = appendRawOr(m.scratch, args, "[]")
	m.scratch = append(m.scratch, ", "...)
	m.scratch = appendRawOr(m.scratch, kwargs, "{}")
	m.scratch = append(m.scratch, `, {"callbacks": `...)
	m.scratch = appendRawOr(m.scratch, callbacks, "null")
	m.scratch = append(m.scratch, `, "errbacks": `...)
	m.scratch = appendRawOr(m.scratch, errbacks, "null")
	m.scratch = append(m.scratch, `, "chain": null, "chord": `...)
	m.scratch = appendRawOr(m.scratch, chord, "null")
	m.scratch = append(m.scratch, "}]"...)
	m.Body = m.scratch[start:len(m.scratch):len(m.scratch)]
	m.bodyJSON = m.Body
	m.Protocol = 1
	return nil
}

// rawOfKind returns the raw text of a value that must start with open
// (an array or object), or nil for null.
func rawOfKind(s *scanner, part, field string, open byte, want string) ([]byte, error) {
	c := s.peek()
	if c == 'n' && s.null() {
		return nil, nil
	}
	if c != open {
		if c == 0 {
			return nil, fieldErr(s.err(), part, field)
		}
		return nil, typeError(part, field, want, c)
	}
	v, err := s.skip()
	return v, fieldErr(err, part, field)
}
