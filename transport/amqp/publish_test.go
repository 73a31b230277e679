package amqp

import (
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport/transporttest"
)

// TestPublishErrorText: a *PublishError names the messages and the reason.
func TestPublishErrorText(t *testing.T) {
	t.Parallel()
	b := &pubBatch{src: &rawSource{items: []rawPub{
		{pub: amqp091.Publishing{CorrelationId: "a"}},
		{pub: amqp091.Publishing{CorrelationId: "b"}},
		{pub: amqp091.Publishing{CorrelationId: "c"}},
	}}, status: []uint8{stAcked, stNacked, stReturned}}
	b.reason = "312 NO_ROUTE"
	want := "amqp: publish: 1 message(s) nacked by the broker (b); 1 message(s) returned as unroutable (c): 312 NO_ROUTE"
	if err := b.err(); err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

// TestFillMatchesCodecProperties: the zero-copy property writer says what
// codec.AMQPPropertiesOf says (with the broker's oid as default reply_to).
func TestFillMatchesCodecProperties(t *testing.T) {
	t.Parallel()
	cases := []func(m *codec.Message){
		func(m *codec.Message) {},
		func(m *codec.Message) { m.ContentType, m.ContentEncoding = nil, nil },
		func(m *codec.Message) { m.ContentType, m.ContentEncoding = []byte(codec.ContentTypeMsgpack), nil },
		func(m *codec.Message) { m.ContentType, m.ContentEncoding = []byte("application/x-yaml"), nil },
		func(m *codec.Message) { m.ContentEncoding = []byte("binary") },
		func(m *codec.Message) { m.Expiration, m.HasExpiration = 600000, true },
		func(m *codec.Message) { m.Expiration, m.HasExpiration = 0, true },
		func(m *codec.Message) { m.DeliveryMode, m.Priority = 1, 9 },
		func(m *codec.Message) { m.DeliveryMode = 0 },
		func(m *codec.Message) { m.CorrelationID, m.ReplyTo = nil, []byte("client-oid") },
	}
	for i, edit := range cases {
		m := transporttest.NewMessage("q", "id-1", 0)
		edit(m)
		want := codec.AMQPPropertiesOf(m)
		if want.ReplyTo == "" {
			want.ReplyTo = "broker-oid"
		}
		var p amqp091.Publishing
		if _, _, _, err := (&msgSource{b: &Broker{oid: "broker-oid"}, msgs: []*codec.Message{m}}).fill(0, &p); err != nil {
			t.Fatal(err)
		}
		got := codec.AMQPProperties{ContentType: p.ContentType, ContentEncoding: p.ContentEncoding,
			CorrelationID: p.CorrelationId, ReplyTo: p.ReplyTo, Expiration: p.Expiration,
			DeliveryMode: p.DeliveryMode, Priority: p.Priority}
		if got != want {
			t.Errorf("case %d: %+v, want %+v", i, got, want)
		}
		codec.ReleaseMessage(m)
	}
}
