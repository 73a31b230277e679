// Package memory is an in-process broker and result backend: the engine's
// default, with no server to run.
//
// The broker passes *codec.Message pointers from producer to consumer:
// nothing is encoded, copied or allocated per message. Queues are FIFO
// rings, one per priority level, unbounded unless the broker is made with
// MaxLength (publishers then wait for room); like RabbitMQ, a higher
// priority number (0-9) is served first. Unacknowledged messages are
// tracked per consumer and requeued, flagged Redelivered, when the consumer
// is closed or rejects them with requeue. Bounded queues stage like the
// others (see stage). Result records live until ForgetResult or, with
// ResultExpires (the engine passes its result_expires), until they
// expire. Nothing survives the process.
//
// Broker and Backend are safe for concurrent use.
package memory
