"""Send the AMQP transport's interop cases with the real Python client and
print one JSON line per task: {"kind", "id", "expect"} ("expect" is the
result, or the exception type for failures). The shared py_send.py cases
come first (through its send function, with this app's settings), then
the ones with options.

Usage: interop_send.py QUEUE [--wait SECONDS]
With --wait (needed with rpc://, where only the sender gets the results)
the script waits for each result itself and adds "status" and "result".
Environment: as interop_app.py; CELERY_TASK_SERIALIZER picks json/msgpack.
"""
import argparse
import datetime
import json

from interop_app import app  # noqa: F401

from celery import signature
from py_send import send as py_send

parser = argparse.ArgumentParser()
parser.add_argument('queue')
parser.add_argument('--wait', type=float, default=0.0)
cli = parser.parse_args()
everything = [None, True, False, 0, -7, 2**53, 1.5, -0.25, '', 'é✓ "q"\n', [], [1, [2, None]], {}, {'k': {'n': [True]}}]
now = datetime.datetime.now(datetime.timezone.utc)
sent = []


def send(kind, name, args=(), kwargs=None, expect=None, **opts):
    r = signature(name, args=args, kwargs=kwargs or {}).apply_async(queue=cli.queue, **opts)
    sent.append(({'kind': kind, 'id': r.id, 'expect': expect}, r))


for kind in ['add', 'mul', 'xsum', 'fail', 'sleep', 'echo', 'group']:
    r, expect = py_send(kind, {'queue': cli.queue})
    sent.append(({'kind': kind, 'id': r.id, 'expect': expect}, r))
send('echo-types', 'interop.echo', everything, {'kw': everything, 'none': None},
     expect={'args': everything, 'kwargs': {'kw': everything, 'none': None}})
send('fail', 'interop.fail', ('boom from python',), expect='ValueError')
send('retry', 'interop.retry', (2,), expect=2)
send('countdown', 'interop.add', (1, 1), expect=2, countdown=1)
send('eta', 'interop.add', (2, 2), expect=4, eta=now + datetime.timedelta(seconds=1))
send('expires', 'interop.add', (3, 3), expect=6, expires=now + datetime.timedelta(seconds=60))
send('priority-9', 'interop.mul', (3, 3), expect=9, priority=9)
send('priority-4', 'interop.mul', (2, 2), expect=4, priority=4)
send('zlib', 'interop.xsum', ([1, 2, 3],), expect=6, compression='zlib')
send('bzip2', 'interop.xsum', ([4, 5, 6],), expect=15, compression='bzip2')
send('sleep', 'interop.sleep', (0.2,), expect=0.2)



def outcome(r):
    try:
        value = r.get(timeout=cli.wait, propagate=False)
        status = r.status
    except Exception as exc:
        value, status = repr(exc), 'TIMEOUT'
    if isinstance(value, BaseException):
        value = {'exc_type': type(value).__name__, 'exc_message': list(value.args),
                 'exc_module': type(value).__module__}
    return status, value


for line, r in sent:
    if line['kind'] == 'group':
        line['children'] = [c.id for c in r.results]
        if cli.wait:
            outs = [outcome(c) for c in r.results]
            line['status'], line['result'] = [o[0] for o in outs], [o[1] for o in outs]
    elif cli.wait:
        line['status'], line['result'] = outcome(r)
    print(json.dumps(line), flush=True)
