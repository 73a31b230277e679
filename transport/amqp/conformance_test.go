package amqp

import (
	"testing"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/transporttest"
)

// harness configures the brokers under test with x-max-priority (for the
// priority test) and without ETA parking: MessageRoundTrip sends a task
// due in 2030, which a default consumer parks in a delay queue by design
// (see TestParkFarETA) instead of returning it.
func harness() transporttest.Harness {
	return transporttest.Harness{
		NewBroker: func(t *testing.T) transport.Broker {
			return newTestBroker(t, WithMaxPriority(10), WithETAThreshold(0))
		},
		NewBackend: func(t *testing.T) transport.Backend {
			b := newTestBroker(t)
			be, err := NewRPCBackend(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { be.Close() })
			return be
		},
		HighPriorityFirst: true,
		Queue:             func(t *testing.T, name string) string { return testQueue(t, name) },
	}
}

func TestConformanceBroker(t *testing.T)  { transporttest.RunBroker(t, harness()) }
func TestConformanceBackend(t *testing.T) { transporttest.RunBackend(t, harness()) }
