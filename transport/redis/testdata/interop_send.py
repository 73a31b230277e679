"""Send the Redis transport's interop cases with the real Python client and
print one JSON line per task: {"kind", "id", "expect"} ("expect" is the
result, or the exception type for failures, or "REVOKED").

Usage: interop_send.py QUEUE
Environment: as interop_app.py; CELERY_TASK_SERIALIZER picks json/msgpack.
"""
import datetime
import json
import sys

from interop_app import app  # noqa: F401

from celery import signature

queue = sys.argv[1]
everything = [None, True, False, 0, -7, 2**53, 1.5, -0.25, '', 'é✓ "q"\n', [], [1, [2, None]], {}, {'k': {'n': [True]}}]


def send(kind, name, args=(), kwargs=None, expect=None, **opts):
    r = signature(name, args=args, kwargs=kwargs or {}).apply_async(queue=queue, **opts)
    print(json.dumps({'kind': kind, 'id': r.id, 'expect': expect}), flush=True)


send('add', 'interop.add', (2, 3), expect=5)
send('echo-types', 'interop.echo', everything, {'kw': everything, 'none': None},
     expect={'args': everything, 'kwargs': {'kw': everything, 'none': None}})
send('fail', 'interop.fail', ('boom from python',), expect='ValueError')
send('retry', 'interop.retry', (2,), expect=2)
send('countdown', 'interop.add', (1, 1), expect=2, countdown=1)
send('eta', 'interop.add', (2, 2), expect=4,
     eta=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1))
send('expired', 'interop.add', (3, 3), expect='REVOKED',
     expires=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5))
send('priority-9', 'interop.mul', (3, 3), expect=9, priority=9)
send('priority-4', 'interop.mul', (2, 2), expect=4, priority=4)
send('zlib', 'interop.xsum', ([1, 2, 3],), expect=6, compression='zlib')
send('bzip2', 'interop.xsum', ([4, 5, 6],), expect=15, compression='bzip2')
send('sleep', 'interop.sleep', (0.2,), expect=0.2)
