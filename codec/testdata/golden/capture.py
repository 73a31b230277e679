#!/usr/bin/python3
"""Capture golden wire vectors for package codec from the real Python Celery.

Usage (from anywhere; needs Redis on 127.0.0.1:6379 and RabbitMQ with
guest/guest on 127.0.0.1:5672, and Debian's python3-celery):

    /usr/bin/python3 codec/testdata/golden/capture.py [--db 14] [--vhost golden-codec]

It FLUSHES Redis DB --db (default 14, reserved for these captures), creates
the RabbitMQ vhost --vhost and deletes it again at the end, and rewrites
redis/, amqp/, results/ and manifest.json next to this script.

What it stores:
  redis/NAME.json      a task message exactly as the Python client left it in
                       the Redis list (the kombu envelope, bytes unchanged)
  amqp/NAME.json       a task message read from RabbitMQ with py-amqp
                       basic_get: properties, headers (each value tagged
                       with the AMQP field type py-amqp writes for it:
                       S t I L d V A F T) and the raw body in base64
  results/NAME.json    a result-backend value exactly as the worker (or
                       GroupResult.save) stored it
  manifest.json        one entry per file with what Python itself decodes
                       from it (body after decompression/deserialization,
                       eta/expires/date_done as epoch microseconds via
                       celery's own ISO-8601 parser, the v1 -> v2 conversion
                       of celery.worker.strategy.proto1_to_proto2), so the Go
                       tests compare against Python's view, not their own.

Task messages are sent with the shared interop helpers
(../../../../shared/interop: py_app.py tasks, py_send.send for chain, group
and chord). py_peek.py prints decoded messages; this script reads the same
places (Redis LRANGE, AMQP basic_get) but keeps the raw bytes, which is what
golden vectors need. The worker phases run `celery -A golden_app worker -P
solo` (golden_app.py adds a retrying and a slow task to the interop app).
"""
import argparse
import base64
import bz2
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PY = '/usr/bin/python3'

# Fixed task ids, so tests can name them.
ID = {
    'plain': '00000000-0000-4000-8000-000000000001',
    'options': '00000000-0000-4000-8000-000000000002',
    'eta': '00000000-0000-4000-8000-000000000003',
    'link': '00000000-0000-4000-8000-000000000004',
    'unicode': '00000000-0000-4000-8000-000000000005',
    'msgpack': '00000000-0000-4000-8000-000000000006',
    'yaml': '00000000-0000-4000-8000-000000000007',
    'zlib': '00000000-0000-4000-8000-000000000008',
    'bzip2': '00000000-0000-4000-8000-000000000009',
    'v1': '00000000-0000-4000-8000-00000000000a',
    'v1_group': '00000000-0000-4000-8000-00000000000b',
    'amqp_plain': '00000000-0000-4000-8000-00000000000c',
    'amqp_options': '00000000-0000-4000-8000-00000000000d',
    'amqp_msgpack': '00000000-0000-4000-8000-00000000000e',
    'amqp_v1': '00000000-0000-4000-8000-00000000000f',
    'success': '00000000-0000-4000-8000-000000000010',
    'failure': '00000000-0000-4000-8000-000000000011',
    'retry': '00000000-0000-4000-8000-000000000012',
    'revoked': '00000000-0000-4000-8000-000000000013',
    'started': '00000000-0000-4000-8000-000000000014',
    'restored': '00000000-0000-4000-8000-000000000015',
    'extended': '00000000-0000-4000-8000-000000000016',
    'group': '00000000-0000-4000-8000-000000000017',
}


def epoch_us(text):
    """Python's (celery's) reading of an ISO-8601 time as UTC epoch microseconds."""
    if text is None:
        return None
    from celery.utils.iso8601 import parse_iso8601
    dt = parse_iso8601(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    delta = dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


def decode_body(raw, content_type, content_encoding, compression):
    from kombu.serialization import loads
    if compression == 'application/x-gzip':
        raw = zlib.decompress(raw)
    elif compression == 'application/x-bz2':
        raw = bz2.decompress(raw)
    elif compression:
        raise SystemExit('unexpected compression %r' % compression)
    return loads(raw, content_type, content_encoding,
                 accept={'application/json', 'application/x-msgpack', 'application/x-yaml'})


def v1_expect(body, headers):
    """What the Python worker turns a protocol-1 body into."""
    from celery.worker.strategy import proto1_to_proto2

    class Msg:
        pass
    msg = Msg()
    msg.headers = headers
    (args, kwargs, embed), hdrs, _, utc = proto1_to_proto2(msg, dict(body))
    keep = ('task', 'id', 'group', 'group_index', 'retries', 'eta', 'expires',
            'timelimit', 'root_id', 'parent_id', 'shadow')
    return {'body': [args, kwargs, embed],
            'headers': {k: hdrs.get(k) for k in keep}, 'utc': utc}


def write(rel, data):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def redis_entry(name, raw, queue):
    env = json.loads(raw)
    props = env['properties']
    body = env['body']
    if props.get('body_encoding') == 'base64':
        body = base64.b64decode(body)
    elif isinstance(body, str):
        body = body.encode()
    headers = env['headers']
    decoded = decode_body(body, env['content-type'], env['content-encoding'],
                          headers.get('compression'))
    entry = {'file': 'redis/%s.json' % name, 'kind': 'redis', 'queue': queue}
    if 'task' in headers:
        entry.update(protocol=2, body=decoded,
                     eta_us=epoch_us(headers.get('eta')),
                     expires_us=epoch_us(headers.get('expires')))
    else:
        v1 = v1_expect(decoded, headers)
        entry.update(protocol=1, body=v1['body'], v1_headers=v1['headers'],
                     utc=v1['utc'], eta_us=epoch_us(v1['headers']['eta']),
                     expires_us=epoch_us(v1['headers']['expires']))
    write(entry['file'], raw)
    return entry


# ---------------------------------------------------------------- Redis client

def drain_lists(client):
    """Return [(key, raw)] for every message in every list, oldest first, and delete them."""
    out = []
    for key in sorted(client.keys('*')):
        if client.type(key) != b'list':
            continue
        for raw in reversed(client.lrange(key, 0, -1)):
            out.append((key.decode(), raw))
        client.delete(key)
    return out


def phase_redis_client(args):
    import redis
    from celery import chain, chord, group
    from golden_app import add, app, echo, fail, mul, xsum
    import py_send
    client = redis.Redis.from_url(os.environ['CELERY_BROKER_URL'])
    entries = []

    def grab(name, send):
        send()
        msgs = drain_lists(client)
        if not msgs:
            raise SystemExit('no message for %s' % name)
        for i, (queue, raw) in enumerate(msgs):
            n = name if len(msgs) == 1 else '%s.%d' % (name, i)
            entries.append(redis_entry(n, raw, queue))

    utc = datetime.timezone.utc
    grab('plain', lambda: add.apply_async((2, 3), task_id=ID['plain']))
    grab('options', lambda: add.apply_async(
        (2,), {'y': 3}, task_id=ID['options'], countdown=30, expires=600, priority=5,
        time_limit=60, soft_time_limit=50))
    grab('eta', lambda: add.apply_async(
        (1, 1), task_id=ID['eta'],
        eta=datetime.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=utc),
        expires=datetime.datetime(2030, 1, 3, tzinfo=utc),
        shadow='shadowed.add', priority=9, time_limit=1.5, ignore_result=True,
        headers={'x-custom': 'v', 'x-nested': {'a': [1, 2.5, None, True]}}))
    grab('link', lambda: add.apply_async(
        (2, 3), task_id=ID['link'], link=mul.s(10), link_error=fail.si('errback')))
    grab('unicode', lambda: echo.apply_async(
        ('h\u00e9llo "q"\n\t\\ /', '\U0001F600', '\x01'), {'k\u00e9': {'nested': 'v'}},
        task_id=ID['unicode']))
    grab('msgpack', lambda: echo.apply_async(
        (1, 'two', [3.0, None, True], {'k': 'v'}), {'big': 2 ** 40, 'neg': -7, 'f': 0.25},
        task_id=ID['msgpack'], serializer='msgpack'))
    grab('yaml', lambda: echo.apply_async(
        (1, 'two', [3.0, None, True], {'k': 'v'}), {'s': 'yes', 'n': None},
        task_id=ID['yaml'], serializer='yaml'))
    grab('zlib', lambda: add.apply_async((2, 3), task_id=ID['zlib'], compression='zlib'))
    grab('bzip2', lambda: add.apply_async((2, 3), task_id=ID['bzip2'], compression='bzip2'))
    grab('chain', lambda: py_send.send('chain', {}))
    grab('canvas', lambda: chain(add.s(1, 1), chord([add.s(1, 2), add.s(3, 4)], xsum.s()),
                                 mul.s(2)).apply_async())
    grab('chord', lambda: py_send.send('chord', {}))

    saved = {}

    def send_group():
        res = group(add.s(1, 1), add.s(2, 2), mul.s(3, 3)).apply_async(task_id=ID['group'])
        res.save()
        saved['res'] = res
    grab('group', send_group)
    key = 'celery-taskset-meta-%s' % ID['group']
    raw = client.get(key)
    write('results/group.json', raw)
    entries.append({'file': 'results/group.json', 'kind': 'group', 'key': key,
                    'group_id': ID['group'],
                    'children': [r.id for r in saved['res'].results]})
    entries += signatures()
    return entries


def signatures():
    """Signature dicts as kombu's JSON writes them (what travels in embed and kwargs)."""
    from celery import chain, chord, group, signature
    from kombu.utils.json import dumps
    from golden_app import add, fail, mul, xsum
    sigs = {
        'simple': add.s(2, 3),
        'options': add.signature((2,), {'y': 3}, countdown=10, expires=60, priority=3,
                                 queue='q1', link=[mul.s(10)], link_error=[fail.si('e')],
                                 time_limit=30, soft_time_limit=20.5, custom_opt={'a': 1}),
        'immutable': mul.si(4, 4).set(group_id='g-1', group_index=2, task_id='t-1'),
        'chain': chain(add.s(1, 2), mul.s(3), xsum.si([1, 2])),
        'group': group(add.s(1, 1), mul.s(2, 2)),
        'chord': chord([add.s(1, 2), add.s(3, 4)], xsum.s()),
        'chord_frozen': chord([add.s(5, 6)], xsum.s(), task_id='c-1'),
        'chunks': add.chunks([(1, 2), (3, 4)], 1),
        'xmap': xsum.map([[1], [2]]),
        'xstarmap': add.starmap([(1, 2)]),
        'nested': chain(add.s(1, 1), group(mul.s(2), mul.s(3)), xsum.s()),
    }
    sigs['chord_frozen'].freeze()
    entries = []
    for name, sig in sigs.items():
        rel = 'signatures/%s.json' % name
        raw = dumps(sig)
        write(rel, raw.encode())
        entries.append({'file': rel, 'kind': 'signature', 'value': json.loads(raw)})
    return entries


def phase_redis_v1(args):
    import redis
    from celery import group
    from golden_app import add, app, mul
    client = redis.Redis.from_url(os.environ['CELERY_BROKER_URL'])
    entries = []
    add.apply_async((1, 2), task_id=ID['v1'], countdown=30, expires=600,
                    time_limit=10, soft_time_limit=5, link=mul.s(3), link_error=mul.si(0, 0))
    for q, raw in drain_lists(client):
        entries.append(redis_entry('v1', raw, q))
    group(add.s(1, 1), add.s(2, 2)).apply_async(task_id=ID['v1_group'])
    for i, (q, raw) in enumerate(drain_lists(client)):
        entries.append(redis_entry('v1_group.%d' % i, raw, q))
    return entries


# ---------------------------------------------------------------- AMQP client

def typed(v):
    """Tag v with the AMQP field-table type py-amqp writes for it."""
    if isinstance(v, (str, bytes)):
        return {'S': v if isinstance(v, str) else v.decode()}
    if isinstance(v, bool):
        return {'t': v}
    if isinstance(v, float):
        return {'d': v}
    if isinstance(v, int):
        return {'I': v} if -2147483647 <= v <= 2147483647 else {'L': v}
    if isinstance(v, datetime.datetime):
        return {'T': int(v.replace(tzinfo=datetime.timezone.utc).timestamp())}
    if isinstance(v, dict):
        return {'F': {k: typed(x) for k, x in v.items()}}
    if isinstance(v, (list, tuple)):
        return {'A': [typed(x) for x in v]}
    if v is None:
        return {'V': None}
    raise TypeError(type(v))


def phase_amqp_client(args):
    import amqp
    from golden_app import add, app, mul, fail
    from urllib.parse import urlparse
    entries = []

    def grab(name, send):
        send()
        u = urlparse(os.environ['CELERY_BROKER_URL'])
        conn = amqp.Connection('%s:%d' % (u.hostname, u.port or 5672), userid='guest',
                               password='guest', virtual_host=u.path[1:])
        conn.connect()
        ch = conn.channel()
        msg = ch.basic_get('celery', no_ack=True)
        if msg is None:
            raise SystemExit('no AMQP message for %s' % name)
        props = dict(msg.properties)
        headers = props.pop('application_headers', {}) or {}
        body = msg.body if isinstance(msg.body, bytes) else msg.body.encode()
        doc = {'delivery_info': {k: msg.delivery_info[k] for k in ('exchange', 'routing_key', 'redelivered')},
               'properties': props, 'headers': typed(headers)['F'],
               'body_base64': base64.b64encode(body).decode()}
        rel = 'amqp/%s.json' % name
        write(rel, json.dumps(doc, indent=1).encode())
        decoded = decode_body(body, props.get('content_type'), props.get('content_encoding'),
                              headers.get('compression'))
        entry = {'file': rel, 'kind': 'amqp'}
        if 'task' in headers:
            entry.update(protocol=2, body=decoded, eta_us=epoch_us(headers.get('eta')),
                         expires_us=epoch_us(headers.get('expires')))
        else:
            v1 = v1_expect(decoded, headers)
            entry.update(protocol=1, body=v1['body'], v1_headers=v1['headers'], utc=v1['utc'],
                         eta_us=epoch_us(v1['headers']['eta']),
                         expires_us=epoch_us(v1['headers']['expires']))
        entries.append(entry)
        ch.close()
        conn.close()

    if os.environ.get('GOLDEN_PROTOCOL') == '1':
        grab('v1', lambda: add.apply_async((4, 5), task_id=ID['amqp_v1'], countdown=30))
        return entries
    grab('plain', lambda: add.apply_async((2, 3), task_id=ID['amqp_plain']))
    grab('options', lambda: add.apply_async(
        (2,), {'y': 3}, task_id=ID['amqp_options'], priority=7, countdown=60, expires=120,
        compression='zlib', time_limit=60, soft_time_limit=50.5, link=mul.s(10),
        headers={'x-custom': 'v', 'x-list': [1, 'a', None], 'x-map': {'k': 1.5}}))
    grab('msgpack', lambda: add.apply_async((2, 3), task_id=ID['amqp_msgpack'], serializer='msgpack'))
    return entries


# ---------------------------------------------------------------- worker runs

def start_worker(extra_env, queues='celery'):
    env = dict(os.environ, **extra_env)
    return subprocess.Popen(
        [PY, '-m', 'celery', '-A', 'golden_app', 'worker', '-P', 'solo', '-l', 'warning',
         '-Q', queues, '-n', 'golden@localhost', '--without-gossip', '--without-mingle',
         '--without-heartbeat'],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_worker(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(client, key, pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        raw = client.get(key)
        if raw is not None and pred(json.loads(raw)):
            return raw
        time.sleep(0.05)
    raise SystemExit('timed out waiting for %s' % key)


def result_entry(name, raw, task_id):
    doc = json.loads(raw)
    rel = 'results/%s.json' % name
    write(rel, raw)
    return {'file': rel, 'kind': 'result', 'task_id': task_id,
            'date_done_us': epoch_us(doc.get('date_done'))}


def phase_worker(args):
    import redis
    from golden_app import add, app, fail, retry, slow
    from celery import chain, group
    client = redis.Redis.from_url(os.environ['CELERY_BROKER_URL'])
    meta = 'celery-task-meta-%s'
    entries = []
    extended = os.environ.get('CELERY_RESULT_EXTENDED') == '1'
    proc = start_worker({})
    try:
        if extended:
            add.apply_async((2,), {'y': 40}, task_id=ID['extended'])
            raw = wait_for(client, meta % ID['extended'], lambda d: d['status'] == 'SUCCESS')
            entries.append(result_entry('extended', raw, ID['extended']))
            return entries
        # Held by the worker (countdown), restored to the list on warm shutdown.
        add.apply_async((7, 8), task_id=ID['restored'], countdown=600)
        add.apply_async((2, 3), task_id=ID['success'])
        fail.apply_async(('kaboom',), task_id=ID['failure'])
        retry.apply_async((5,), task_id=ID['retry'])
        add.apply_async((1, 1), task_id=ID['revoked'],
                        expires=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
        slow.apply_async((3,), task_id=ID['started'])
        first = chain(add.s(1, 2), add.s(3)).apply_async()
        first_id = first.parent.id
        members = group(add.s(4, 4), add.s(5, 5)).apply_async()

        for name in ('success', 'failure', 'revoked'):
            ready = {'success': 'SUCCESS', 'failure': 'FAILURE', 'revoked': 'REVOKED'}[name]
            raw = wait_for(client, meta % ID[name], lambda d, r=ready: d['status'] == r)
            entries.append(result_entry(name, raw, ID[name]))
        raw = wait_for(client, meta % ID['retry'], lambda d: d['status'] == 'RETRY')
        entries.append(result_entry('retry', raw, ID['retry']))
        raw = wait_for(client, meta % ID['started'], lambda d: d['status'] == 'STARTED')
        entries.append(result_entry('started', raw, ID['started']))
        raw = wait_for(client, meta % first_id, lambda d: d['status'] == 'SUCCESS')
        entries.append(result_entry('chain_parent', raw, first_id))
        raw = wait_for(client, meta % first.id, lambda d: d['status'] == 'SUCCESS')
        entries.append(result_entry('chain_child', raw, first.id))
        m0 = members.results[0].id
        raw = wait_for(client, meta % m0, lambda d: d['status'] == 'SUCCESS')
        entries.append(result_entry('group_member', raw, m0))
        wait_for(client, meta % members.results[1].id, lambda d: d['status'] == 'SUCCESS')
        wait_for(client, meta % ID['started'], lambda d: d['status'] == 'SUCCESS', timeout=30)
    finally:
        stop_worker(proc)
    # The retry re-publish went to golden.retry; the countdown task was restored.
    for q in ('golden.retry', 'celery'):
        msgs = list(reversed(client.lrange(q, 0, -1)))
        name = 'retry' if q == 'golden.retry' else 'restored'
        if len(msgs) != 1:
            raise SystemExit('want 1 message in %s, got %d' % (q, len(msgs)))
        entries.append(redis_entry(name, msgs[0], q))
        client.delete(q)
    return entries


# ---------------------------------------------------------------- main

PHASES = {'redis-client': phase_redis_client, 'redis-v1': phase_redis_v1,
          'amqp-client': phase_amqp_client, 'worker': phase_worker}


def run_phase(phase, env):
    out = subprocess.run([PY, os.path.abspath(__file__), '--phase', phase],
                         env=dict(os.environ, **env), cwd=HERE, stdout=subprocess.PIPE,
                         timeout=180, check=True)
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--db', type=int, default=14)
    p.add_argument('--vhost', default='golden-codec')
    p.add_argument('--phase', choices=sorted(PHASES))
    args = p.parse_args()
    sys.path.insert(0, HERE)
    if args.phase:
        sys.stdout.write(json.dumps(PHASES[args.phase](args)))
        return

    import redis
    rurl = 'redis://127.0.0.1:6379/%d' % args.db
    redis.Redis.from_url(rurl).flushdb()
    base = {'CELERY_BROKER_URL': rurl, 'CELERY_RESULT_BACKEND': rurl}
    for d in ('redis', 'amqp', 'results', 'signatures'):
        for f in os.listdir(os.path.join(HERE, d)) if os.path.isdir(os.path.join(HERE, d)) else []:
            os.remove(os.path.join(HERE, d, f))
    entries = []
    entries += run_phase('redis-client', base)
    entries += run_phase('redis-v1', dict(base, GOLDEN_PROTOCOL='1'))
    entries += run_phase('worker', base)
    entries += run_phase('worker', dict(base, CELERY_RESULT_EXTENDED='1'))

    subprocess.run(['rabbitmqctl', '-q', 'add_vhost', args.vhost], check=True)
    try:
        subprocess.run(['rabbitmqctl', '-q', 'set_permissions', '-p', args.vhost, 'guest',
                        '.*', '.*', '.*'], check=True)
        aurl = 'amqp://guest:guest@127.0.0.1:5672/%s' % args.vhost
        entries += run_phase('amqp-client', dict(base, CELERY_BROKER_URL=aurl))
        entries += run_phase('amqp-client', dict(base, CELERY_BROKER_URL=aurl, GOLDEN_PROTOCOL='1'))
    finally:
        subprocess.run(['rabbitmqctl', '-q', 'delete_vhost', args.vhost], check=True)
    redis.Redis.from_url(rurl).flushdb()
    entries.sort(key=lambda e: e['file'])
    write('manifest.json', (json.dumps(entries, indent=1, sort_keys=True) + '\n').encode())
    print('wrote %d vectors' % len(entries))


if __name__ == '__main__':
    main()
