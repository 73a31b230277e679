package codec

// Clone returns a deep copy of m from the message pool (release it with
// ReleaseMessage): every byte-slice field of the copy points into the
// copy's own scratch storage, so the copy stays valid after m is released
// or reused.
func (m *Message) Clone() *Message {
	c := AcquireMessage()
	scratch := c.scratch[:0]
	*c = *m
	c.scratch = scratch
	c.bodyJSON = nil // a view into m's memory; recomputed on demand
	fields := [...]*[]byte{
		&c.Lang, &c.Task, &c.ID, &c.Shadow, &c.Group, &c.RootID, &c.ParentID,
		&c.ArgsRepr, &c.KwargsRepr, &c.Origin, &c.Compression, &c.ExtraHeaders,
		&c.CorrelationID, &c.ReplyTo, &c.ContentType, &c.ContentEncoding,
		&c.Exchange, &c.RoutingKey, &c.DeliveryTag, &c.Body,
	}
	n := 0
	for _, f := range fields {
		n += len(*f)
	}
	c.reserve(n)
	for _, f := range fields {
		if *f != nil {
			*f = c.Own(*f)
		}
	}
	return c
}
