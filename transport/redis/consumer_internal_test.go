package redis

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport/transporttest"
)

func internalBroker(t *testing.T) *Broker {
	t.Helper()
	raw := brokertest.RedisURL(t)
	prefix := brokertest.Prefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := NewBroker(ctx, raw, WithGlobalKeyPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := b.client
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, _ := c.Do(ctx, c.B().Keys().Pattern(prefix+"*").Build()).AsStrSlice()
		if len(keys) > 0 {
			c.Do(ctx, c.B().Del().Key(keys...).Build())
		}
		b.Close()
	})
	return b
}

// TestLuaAndGoAgreeOnTags checks that the fetch script and deliveryTag
// pick the same bookkeeping key for odd envelopes (the consumer acks with
// the Go one).
func TestLuaAndGoAgreeOnTags(t *testing.T) {
	b := internalBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	envs := []string{
		`{"properties": {"delivery_tag": "plain"}}`,
		"{\"properties\":{\"delivery_tag\"\v:\f\"spaces\"}}",
		`{"headers": {"x": "\"delivery_tag\": \"fake\""}, "properties": {"delivery_tag": "after-fake"}}`,
		`{"delivery_tag": "a\\b", "properties": {"delivery_tag": "second"}}`,
		`{"properties": {"delivery_tag": ""}}`,
		`garbage without a tag`,
		`{"headers": {"delivery_tag": "first"}, "properties": {"body_encoding": "base64", "delivery_tag": "fast-last"}}`,
		`{"properties": {"delivery_tag": "a\"b"}, "x": {"delivery_tag": "fallback"}}`,
		`{"properties": {"delivery_tag": "esc\"aped"}}`,
		`"delivery_tag": "}}`,
	}
	list := b.listKeys([]byte("tags"))[0]
	for _, e := range envs {
		if err := b.client.Do(ctx, b.client.B().Rpush().Key(list).Element(e).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	// Run the script directly to see the keys it wrote, then compare with
	// what the Go side derives (a consumer would drop most as garbage).
	keys := []string{b.unackedIndex, b.unacked, list}
	for _, s := range b.cfg.prioritySteps[1:] {
		keys = append(keys, b.listKeys([]byte("tags"))[slices.Index(b.cfg.prioritySteps, s)])
	}
	score := unixScore(time.Now())
	res := luaFetch.exec(ctx, b.client, keys, []string{"100", score, "id", "1", "0", `"tags"`})
	arr, err := res.AsStrSlice()
	if err != nil || len(arr) != len(envs) {
		t.Fatalf("fetch script returned %d (%v)", len(arr), err)
	}
	got, err := b.client.Do(ctx, b.client.B().Hkeys().Key(b.unacked).Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, e := range arr { // RPOP order: the first RPUSHed comes first
		tag := deliveryTag(e)
		if tag == "" {
			tag = "id:" + score + ":" + strconv.Itoa(i+1)
		}
		want = append(want, tag)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("script tags %q, Go tags %q", got, want)
	}
}

// TestLostFetchReplyIsRecovered simulates a fetch whose reply never came
// back: its messages sit in the bookkeeping under the fetch's score, and
// the next fetch puts them back and delivers them.
func TestLostFetchReplyIsRecovered(t *testing.T) {
	b := internalBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, transporttest.NewMessage("lost", "l-1", 0), transporttest.NewMessage("lost", "l-2", 0)); err != nil {
		t.Fatal(err)
	}
	tc, err := b.Consume(ctx, []string{"lost"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := tc.(*Consumer)
	defer c.Close()
	// What the script does, with the reply thrown away.
	score := unixScore(time.Now())
	keys := append([]string{b.unackedIndex, b.unacked}, b.listKeys([]byte("lost"))...)
	if err := luaFetch.exec(ctx, b.client, keys, []string{"10", score, "n", "1", "0", `"lost"`}).Error(); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.QueueLen(ctx, "lost"); n != 0 {
		t.Fatalf("queue still has %d", n)
	}
	c.mu.Lock()
	c.lost = append(c.lost, score)
	c.mu.Unlock()
	// Wake the idle fetcher: it recovers before its next fetch.
	if err := b.Publish(ctx, transporttest.NewMessage("lost", "l-3", 0)); err != nil {
		t.Fatal(err)
	}
	buf := make([]*codec.Message, 4)
	var got []string
	for len(got) < 3 {
		n, err := c.Fetch(ctx, buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range buf[:n] {
			got = append(got, string(m.ID))
			c.Ack(m)
			codec.ReleaseMessage(m)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"l-1", "l-2", "l-3"}) {
		t.Fatalf("recovered %v", got)
	}
}
