package memory_test

import (
	"testing"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
	"github.com/celerity-go/celerity/transport/transporttest"
)

func harness() transporttest.Harness {
	return transporttest.Harness{
		NewBroker: func(t *testing.T) transport.Broker {
			b := memory.NewBroker()
			t.Cleanup(func() { b.Close() })
			return b
		},
		NewBackend: func(t *testing.T) transport.Backend {
			b := memory.NewBackend()
			t.Cleanup(func() { b.Close() })
			return b
		},
		HighPriorityFirst: true,
	}
}

func TestConformanceBroker(t *testing.T)  { transporttest.RunBroker(t, harness()) }
func TestConformanceBackend(t *testing.T) { transporttest.RunBackend(t, harness()) }
