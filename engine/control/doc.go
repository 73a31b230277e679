// Package control is Celery's remote control (the "pidbox") for celerity:
// a Server that makes a celerity worker answer `celery inspect` /
// `celery control` (and Flower), a Client that sends those commands to
// Go and Python workers alike, and the Bus, the broker plumbing that
// remote control and events (package engine/events) share.
//
// # Wire
//
// Everything follows celery-wire.md §3.7, §4.1 and §8 (Celery 5.2.6,
// kombu 5.2.4). A command is kombu's mailbox message
//
//	{"method": "ping", "arguments": {}, "destination": null, "pattern": null,
//	 "matcher": null, "ticket": "<uuid>", "reply_to": {"exchange":
//	 "reply.celery.pidbox", "routing_key": "<client oid>"}}
//
// with headers {"clock": <Lamport clock>, "expires": <unix time>},
// broadcast on the fanout exchange "celery.pidbox". A worker runs it when
// its node name is in destination (or matches pattern with the "glob" or
// "pcre" matcher, or no selector is given) and, when a ticket and reply_to
// are present, replies {"<node>": <value>} with headers {"ticket",
// "clock"} to the direct exchange "reply.celery.pidbox", routing key the
// client's oid. On Redis broadcasts are PUB/SUB messages on
// "/<db>.celery.pidbox" and replies list messages routed through
// _kombu.binding.reply.celery.pidbox (RedisBus); on RabbitMQ they use
// Celery's exact exchange and queue declarations (AMQPBus). MemoryBus
// connects servers and clients inside one process.
//
// # Commands
//
// The Server answers Celery's commands under their names and aliases:
// ping, active, reserved, scheduled, registered, stats, revoked,
// active_queues, query_task, conf, clock, report and hello (mingle)
// among the inspect commands; revoke (with terminate, which cancels the
// running task's context with engine.ErrTerminated), terminate,
// rate_limit, time_limit, pool_grow, pool_shrink, autoscale,
// enable_events, disable_events, heartbeat and shutdown among the control
// commands, and add_consumer and cancel_consumer (engine.Worker.AddQueue and
// CancelQueue; queues as Celery declares them by default, other exchange or
// routing key arguments are refused). Programs add their own commands
// with Register (every server) or Server.Handle (one server). The replies
// have Celery's shapes (request dicts, kombu queue dicts, the stats
// layout), so Python tooling reads them.
//
// Revoked ids live in the app (engine.App.Revoke), bounded as Celery's
// LimitedSet; ServerOptions.StateDB keeps them across restarts (Celery's
// --statedb, as JSON) and ServerOptions.Mingle fetches them from the other
// workers at start (Celery's mingle). A Client given to
// engine.App.SetRevoker makes AsyncResult.Revoke reach every worker, as
// Celery's AsyncResult.revoke does.
//
// # Lifecycle
//
// NewServer before the worker runs (it installs a hook counting tasks per
// name), Start after, Close when the worker stopped. Commands run one at
// a time on the server's goroutine, never on the worker's hot path. A
// Client sets up its reply queue on first use; Close removes it.
//
// Bus, Server and Client are safe for concurrent use.
package control
