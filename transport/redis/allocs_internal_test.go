//go:build !race

package redis

import (
	"testing"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport/transporttest"
)

func TestAllocsDeliveryTag(t *testing.T) {
	m := transporttest.NewMessage("q", "id-1", 0)
	env := string(codec.AppendRedisEnvelope(nil, m))
	want := string(m.DeliveryTag)
	codec.ReleaseMessage(m)
	if n := testing.AllocsPerRun(1000, func() {
		if deliveryTag(env) != want {
			t.Fatal("wrong tag")
		}
	}); n != 0 {
		t.Fatalf("deliveryTag: %v allocations", n)
	}
}
