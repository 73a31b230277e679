package amqp

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/internal/brokertest"
)

// pyDeclare declares, with the real Celery/kombu, the entities named by
// each line of stdin ("task <name> <maxprio>", "control <node>",
// "reply <oid>", "events <node id>", "rpc <oid>") and prints one JSON
// object per line: {"name": ..., "error": null or text}.
const pyDeclare = `
import json, sys
from celery import Celery
from celery.events.receiver import EventReceiver
url = sys.argv[1]
for line in sys.stdin:
    kind, name, *rest = line.split()
    app = Celery('topo', broker=url, backend='rpc://' if kind == 'rpc' else None)
    if kind == 'task' and int(rest[0]):
        app.conf.task_queue_max_priority = int(rest[0])
    try:
        with app.connection_for_write() as conn:
            ch = conn.default_channel
            if kind == 'task':
                app.amqp.queues[name](ch).declare()
            elif kind == 'control':
                app.control.mailbox(conn).get_queue(name)(ch).declare()
            elif kind == 'reply':
                import kombu.pidbox
                kombu.pidbox.oid_from = lambda *a, **k: name
                app.control.mailbox(conn).get_reply_queue()(ch).declare()
            elif kind == 'events':
                r = EventReceiver(conn, app=app, node_id=name)
                r.queue(ch).declare()
            elif kind == 'rpc':
                app.backend.__dict__['oid'] = name
                app.backend.binding(ch).declare()
        print(json.dumps({'name': name, 'error': None}), flush=True)
    except Exception as e:
        print(json.dumps({'name': name, 'error': repr(e)}), flush=True)
`

// topoEntity is one declaration both sides make.
type topoEntity struct {
	line string // for pyDeclare
	q    Queue  // ours
}

func topoEntities(prefix string) []topoEntity {
	return []topoEntity{
		{"task " + prefix + "plain 0", TaskQueue(prefix+"plain", 0)},
		{"task " + prefix + "prio 10", TaskQueue(prefix+"prio", 10)},
		{"control " + prefix + "w1@host", ControlQueue(prefix+"w1@host", "celery")},
		{"reply " + prefix + "oid", ReplyQueue(prefix+"oid", "celery")},
		{"events " + prefix + "node", EventQueue(prefix+"node", "#")},
		{"rpc " + prefix + "rpc", RPCQueue(prefix+"rpc", 24*time.Hour)},
	}
}

func runPyDeclare(t *testing.T, url string, ents []topoEntity) {
	t.Helper()
	var in strings.Builder
	for _, e := range ents {
		in.WriteString(e.line + "\n")
	}
	cmd := exec.Command(brokertest.Python, "-c", pyDeclare, url)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python: %v: %s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Name  string
			Error *string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("python output %q: %v", line, err)
		}
		if r.Error != nil {
			t.Errorf("kombu could not declare %s after us: %s", r.Name, *r.Error)
		}
	}
}

// TestTopologyMatchesKombu declares every kind of entity with kombu first
// and then with this package, and the other way round: RabbitMQ accepts
// a redeclaration only if flags and arguments are equivalent, so neither
// side may get PRECONDITION_FAILED.
func TestTopologyMatchesKombu(t *testing.T) {
	brokertest.Celery(t)
	b := newTestBroker(t)
	url := testURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	goFirst := topoEntities(brokertest.Prefix(t) + "gofirst-")
	pyFirst := topoEntities(brokertest.Prefix(t) + "pyfirst-")
	t.Cleanup(func() {
		for _, e := range append(goFirst, pyFirst...) {
			b.DeleteQueue(context.Background(), e.q.Name)
			if strings.HasPrefix(e.line, "task ") {
				b.DeleteExchange(context.Background(), e.q.Exchange.Name)
			}
		}
	})
	for _, e := range goFirst {
		if err := b.Declare(ctx, e.q); err != nil {
			t.Fatalf("declare %s first: %v", e.q.Name, err)
		}
	}
	runPyDeclare(t, url, append(append([]topoEntity(nil), goFirst...), pyFirst...))
	for _, e := range pyFirst {
		if err := b.Declare(ctx, e.q); err != nil {
			t.Errorf("declare %s after kombu: %v", e.q.Name, err)
		}
	}
}

// TestDeclareMismatchIsAClearError: a task queue created with
// x-max-priority cannot be consumed by a broker configured without it;
// the error says so (as Celery's would) and the broker keeps working.
func TestDeclareMismatchIsAClearError(t *testing.T) {
	q := testQueue(t, "mismatch")
	withPrio := newTestBroker(t, WithMaxPriority(10))
	if err := withPrio.Declare(t.Context(), TaskQueue(q, 10)); err != nil {
		t.Fatal(err)
	}
	plain := newTestBroker(t)
	_, err := plain.Consume(t.Context(), []string{q}, 1)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed || !strings.Contains(err.Error(), "x-max-priority") {
		t.Fatalf("consume with a different x-max-priority: %v, want PRECONDITION_FAILED naming x-max-priority", err)
	}
	err = plain.Publish(t.Context(), newTask(q, "mismatch-1"))
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Fatalf("publish to it: %v, want PRECONDITION_FAILED", err)
	}
	// The publishing connection survived: another queue still works.
	other := testQueue(t, "mismatch-other")
	if err := plain.Publish(t.Context(), newTask(other, "ok-1")); err != nil {
		t.Fatalf("publish after a refused declaration: %v", err)
	}
}
