"""Python Celery side of `celerity bench --compare celery`.

The Go harness runs this file with /usr/bin/python3 in one of three modes,
always on the broker and queue it passes in the environment:

    bench_app.py worker   run a Celery worker on BENCH_QUEUE; when it has
                          finished BENCH_EXPECT tasks it writes
                          {"ready", "first", "last", "done"} (Unix times) to
                          BENCH_OUT; it writes BENCH_OUT + ".ready" when it
                          is consuming
    bench_app.py send N   send N bench.noop tasks one call at a time and
                          print {"start", "elapsed"}
    bench_app.py latency N W
                          W untimed then N timed round trips of bench.echo
                          (send, run, get the result); print {"latencies"}
                          in seconds
    bench_app.py canvas N W
                          N/W chords of W bench.echo header tasks with a
                          bench.count body; print {"start", "elapsed"} until
                          the last body's result is in

Environment: CELERY_BROKER_URL, CELERY_RESULT_BACKEND, BENCH_QUEUE,
BENCH_SERIALIZER (json), BENCH_COMPRESSION (none), BENCH_PAYLOAD (bytes of
the string argument, 0 = no argument), BENCH_ACKS_LATE (1/0),
BENCH_PREFETCH (worker_prefetch_multiplier), BENCH_CONCURRENCY, BENCH_POOL
(prefork, solo, threads), BENCH_EXPECT, BENCH_OUT, BENCH_CONFIRM_PUBLISH
(1: publisher confirms on RabbitMQ, as celerity publishes).

The task names match the Go side's: bench.noop (no result), bench.echo
(returns its arguments) and bench.count (a chord body: the number of
results it gets).
"""
import json
import multiprocessing
import os
import sys
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready

env = os.environ.get

app = Celery(
    'bench_app',
    broker=env('CELERY_BROKER_URL', 'redis://127.0.0.1:6379/15'),
    backend=env('CELERY_RESULT_BACKEND') or None,
)
app.conf.update(
    task_serializer=env('BENCH_SERIALIZER', 'json'),
    task_compression=env('BENCH_COMPRESSION') or None,
    accept_content=['json', 'msgpack', 'yaml'],
    result_accept_content=['json', 'msgpack', 'yaml'],
    task_default_queue=env('BENCH_QUEUE', 'celery'),
    task_acks_late=env('BENCH_ACKS_LATE') == '1',
    worker_prefetch_multiplier=int(env('BENCH_PREFETCH', '4')),
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    result_expires=600,
    enable_utc=True,
)
if env('BENCH_CONFIRM_PUBLISH') == '1':
    # As celerity's AMQP transport does: wait for RabbitMQ's confirmation.
    app.conf.broker_transport_options = {'confirm_publish': True}


@app.task(name='bench.noop', ignore_result=True)
def noop(*args, **kwargs):
    return None


@app.task(name='bench.echo')
def echo(*args, **kwargs):
    return list(args)


@app.task(name='bench.count')
def count(parts):
    return len(parts)


# Shared with the prefork children, which are forked after this import.
_count = multiprocessing.Value('q', 0)
_first = multiprocessing.Value('d', 0.0)
_last = multiprocessing.Value('d', 0.0)
_ready = multiprocessing.Value('d', 0.0)


def _write(path, doc):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(doc, f)
    os.replace(tmp, path)


@worker_ready.connect
def _on_ready(**_):
    _ready.value = time.time()
    out = env('BENCH_OUT')
    if out:
        _write(out + '.ready', {'ready': _ready.value})


@task_prerun.connect
def _on_prerun(**_):
    if _first.value == 0.0:
        with _first.get_lock():
            if _first.value == 0.0:
                _first.value = time.time()


@task_postrun.connect
def _on_postrun(**_):
    with _count.get_lock():
        _count.value += 1
        n = _count.value
        _last.value = time.time()
    expect = int(env('BENCH_EXPECT', '0'))
    out = env('BENCH_OUT')
    if out and n == expect:
        _write(out, {'ready': _ready.value, 'first': _first.value, 'last': _last.value, 'done': n})


def _args():
    size = int(env('BENCH_PAYLOAD', '0'))
    return ['x' * size] if size > 0 else []


def worker():
    pool = env('BENCH_POOL', 'prefork')
    argv = ['worker', '-P', pool, '-Q', env('BENCH_QUEUE', 'celery'), '-l', 'WARNING',
            '-n', 'bench-%d@%%h' % os.getpid(),
            '--without-heartbeat', '--without-gossip', '--without-mingle']
    if pool != 'solo':
        argv += ['-c', env('BENCH_CONCURRENCY', '2')]
    app.worker_main(argv=argv)


def send(n):
    args = _args()
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=3)
        with app.producer_or_acquire() as producer:
            start = time.time()
            for _ in range(n):
                app.send_task('bench.noop', args=args, ignore_result=True, producer=producer)
            elapsed = time.time() - start
    print(json.dumps({'start': start, 'elapsed': elapsed}))


def latency(n, warm):
    args = _args()
    out = []
    for i in range(warm + n):
        t0 = time.perf_counter()
        r = app.send_task('bench.echo', args=args)
        r.get(timeout=60)
        if i >= warm:
            out.append(time.perf_counter() - t0)
        try:
            r.forget()
        except NotImplementedError:  # rpc:// keeps nothing to forget
            pass
    print(json.dumps({'latencies': out}))


def canvas(n, width):
    from celery import chord
    args = _args()
    chords = max(n // width, 1)
    header = [echo.si(*args) for _ in range(width)]
    start = time.time()
    bodies = [chord(header)(count.s()) for _ in range(chords)]
    for b in bodies:
        if b.get(timeout=600) != width:
            sys.exit('chord body saw the wrong number of results')
    elapsed = time.time() - start
    print(json.dumps({'start': start, 'elapsed': elapsed}))


def main(argv):
    if len(argv) >= 1 and argv[0] == 'worker':
        worker()
    elif len(argv) == 2 and argv[0] == 'send':
        send(int(argv[1]))
    elif len(argv) == 3 and argv[0] == 'latency':
        latency(int(argv[1]), int(argv[2]))
    elif len(argv) == 3 and argv[0] == 'canvas':
        canvas(int(argv[1]), int(argv[2]))
    else:
        sys.exit('usage: bench_app.py worker | send N | latency N WARMUP | canvas N WIDTH')


if __name__ == '__main__':
    main(sys.argv[1:])
