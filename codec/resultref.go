package codec

// ResultRef is a result in Celery's "result tuple" form (AsyncResult /
// GroupResult .as_tuple(), celery-wire.md §2.6 and §5.5):
//
//	[[id, parent_or_null], null]            a task result
//	[[id, parent_or_null], [child, ...]]    a group result
//
// It is how results are listed in a record's "children" and how a saved
// group is stored. Decoded IDs are views into the source (copies when they
// had escapes). Not safe for concurrent use.
type ResultRef struct {
	ID       []byte
	Parent   *ResultRef  // nil: no parent
	IsGroup  bool        // a GroupResult (Children may still be empty)
	Children []ResultRef // the group's members
}

// AppendResultRef appends r in tuple form.
func AppendResultRef(dst []byte, r *ResultRef) []byte {
	dst = append(dst, "[["...)
	dst = appendString(dst, r.ID)
	dst = append(dst, ", "...)
	if r.Parent != nil {
		dst = AppendResultRef(dst, r.Parent)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, "], "...)
	if r.IsGroup {
		dst = AppendChildren(dst, r.Children)
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, ']')
}

// AppendChildren appends refs as a JSON array, the "children" value of a
// result record (Result.Children).
func AppendChildren(dst []byte, refs []ResultRef) []byte {
	dst = append(dst, '[')
	for i := range refs {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendResultRef(dst, &refs[i])
	}
	return append(dst, ']')
}

// AppendGroupRecord appends the value Celery stores under
// celery-taskset-meta-<group id> by GroupResult.save(): {"result": tuple}.
func AppendGroupRecord(dst []byte, g *ResultRef) []byte {
	dst = append(dst, `{"result": `...)
	dst = AppendResultRef(dst, g)
	return append(dst, '}')
}

// DecodeResultRef reads one result tuple. As Celery's result_from_tuple,
// it also accepts a bare id string in the [id, parent] position.
func DecodeResultRef(raw []byte) (ResultRef, error) {
	s := scanner{src: raw}
	var r ResultRef
	if err := s.resultRef(&r); err != nil {
		return ResultRef{}, withPlace(err, "result", "children")
	}
	if err := s.end(); err != nil {
		return ResultRef{}, withPlace(err, "result", "children")
	}
	return r, nil
}

// DecodeChildren reads a "children" array (empty or null input gives nil).
func DecodeChildren(raw []byte) ([]ResultRef, error) {
	s := scanner{src: raw}
	if len(trimSpace(raw)) == 0 || s.null() {
		return nil, nil
	}
	refs, err := s.resultRefs()
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, withPlace(err, "result", "children")
	}
	return refs, nil
}

// DecodeGroupRecord reads a saved group record {"result": tuple}.
func DecodeGroupRecord(src []byte) (ResultRef, error) {
	const part = "group"
	s := scanner{src: src}
	if c := s.peek(); c != '{' {
		if c == 0 {
			return ResultRef{}, withPlace(s.err(), part, "")
		}
		return ResultRef{}, &DecodeError{Part: part, Err: ErrFieldType, Detail: "want object, got " + kindName(c)}
	}
	_ = s.open('{')
	var r ResultRef
	found := false
	var kb keyBuf
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return ResultRef{}, withPlace(err, part, "")
		}
		if done {
			break
		}
		if string(unescapeKey(&kb, key, esc)) == "result" {
			found = true
			err = s.resultRef(&r)
		} else {
			_, err = s.skip()
		}
		if err != nil {
			return ResultRef{}, withPlace(err, part, "result")
		}
	}
	if err := s.end(); err != nil {
		return ResultRef{}, withPlace(err, part, "")
	}
	if !found {
		return ResultRef{}, &DecodeError{Part: part, Field: "result", Err: ErrMissingField}
	}
	return r, nil
}

func (s *scanner) resultRefs() ([]ResultRef, error) {
	if c := s.peek(); c != '[' {
		return nil, shapeErr(c, "array of result tuples")
	}
	if err := s.open('['); err != nil {
		return nil, err
	}
	var refs []ResultRef
	for first := true; ; first = false {
		done, err := s.elem(first)
		if err != nil {
			return nil, err
		}
		if done {
			return refs, nil
		}
		refs = append(refs, ResultRef{})
		if err := s.resultRef(&refs[len(refs)-1]); err != nil {
			return nil, err
		}
	}
}

// resultRef reads [[id, parent], nodes] (or [id, nodes]).
func (s *scanner) resultRef(r *ResultRef) error {
	if c := s.peek(); c != '[' {
		return shapeErr(c, "result tuple [[id, parent], children]")
	}
	if err := s.open('['); err != nil {
		return err
	}
	if done, err := s.elem(true); err != nil || done {
		return orShape(err, "result tuple [[id, parent], children]")
	}
	switch c := s.peek(); c {
	case '"':
		id, err := ownedStr(s)
		if err != nil {
			return err
		}
		r.ID = id
	case '[':
		if err := s.open('['); err != nil {
			return err
		}
		if done, err := s.elem(true); err != nil || done {
			return orShape(err, "[id, parent]")
		}
		id, err := ownedStr(s)
		if err != nil {
			return err
		}
		r.ID = id
		if done, err := s.elem(false); err != nil || done {
			return orShape(err, "[id, parent]")
		}
		if !s.null() {
			r.Parent = new(ResultRef)
			if err := s.resultRef(r.Parent); err != nil {
				return err
			}
		}
		if done, err := s.elem(false); err != nil || !done {
			return orShape(err, "[id, parent]")
		}
	default:
		return shapeErr(c, "[id, parent]")
	}
	if done, err := s.elem(false); err != nil || done {
		return orShape(err, "result tuple [[id, parent], children]")
	}
	if !s.null() {
		children, err := s.resultRefs()
		if err != nil {
			return err
		}
		r.IsGroup, r.Children = true, children
	}
	done, err := s.elem(false)
	if err != nil || !done {
		return orShape(err, "result tuple [[id, parent], children]")
	}
	return nil
}

func shapeErr(c byte, want string) error {
	if c == 0 {
		return &DecodeError{Err: ErrTruncated}
	}
	return &DecodeError{Err: ErrFieldType, Detail: "want " + want + ", got " + kindName(c)}
}

func orShape(err error, want string) error {
	if err != nil {
		return err
	}
	return &DecodeError{Err: ErrFieldType, Detail: "want " + want}
}
