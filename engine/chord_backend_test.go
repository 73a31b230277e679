package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/internal/brokertest"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
	"github.com/celerity-go/celerity/transport/redis"
)

// TestChordPartsCountPerTaskNotPerArrival guards the exactly-once chord
// body: a header task reported twice (redelivered and run again) must not
// complete the chord a second time, nor complete it early.
func TestChordPartsCountPerTaskNotPerArrival(t *testing.T) {
	url := brokertest.RedisURL(t)
	prefix := brokertest.Prefix(t)
	brokertest.CleanupRedisPrefix(t, url, prefix)
	rb, err := redis.NewBackend(context.Background(), url+"?global_keyprefix="+prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	for name, b := range map[string]transport.ChordBackend{"memory": memory.NewBackend(), "redis": rb} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			gid := prefix + strings.ReplaceAll(t.Name(), "/", "-")
			brokertest.CleanupRedisKeys(t, url, "celery-taskset-meta-"+gid+"*")
			if err := b.SetChordSize(ctx, gid, 3); err != nil {
				t.Fatal(err)
			}
			report := func(i int, result string) bool {
				part := []byte(`[1, "t` + string(rune('0'+i)) + `", "SUCCESS", ` + result + `]`)
				done, _, err := b.ChordPartDone(ctx, gid, i, part)
				if err != nil {
					t.Fatal(err)
				}
				return done
			}
			if report(0, "10") || report(1, "11") {
				t.Fatal("done before every part")
			}
			if report(1, "11") || report(1, "99") { // redelivered, same or different result
				t.Fatal("a repeated part completed the chord early")
			}
			if !report(2, "12") {
				t.Fatal("the last part did not complete the chord")
			}
			if report(2, "12") || report(0, "10") {
				t.Fatal("a repeated part completed the chord twice")
			}
		})
	}
}
