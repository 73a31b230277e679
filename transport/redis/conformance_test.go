package redis_test

import (
	"testing"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/transporttest"
)

func harness() transporttest.Harness {
	return transporttest.Harness{
		NewBroker: func(t *testing.T) transport.Broker {
			b, _ := newBroker(t)
			return b
		},
		NewBackend: func(t *testing.T) transport.Backend {
			b, _ := newBackend(t)
			return b
		},
		HighPriorityFirst: false, // kombu's Redis buckets: 0 is served first
	}
}

func TestConformanceBroker(t *testing.T)  { transporttest.RunBroker(t, harness()) }
func TestConformanceBackend(t *testing.T) { transporttest.RunBackend(t, harness()) }
