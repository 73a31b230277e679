"""The shared interop app (../../../../shared/interop/py_app.py) plus what the
Redis transport tests need: broker transport options from the environment
and a task that retries.

Environment (besides py_app's):
    CELERITY_INTEROP_DIR        directory of py_app.py (required)
    REDIS_VISIBILITY_TIMEOUT    broker visibility_timeout in seconds
    REDIS_GLOBAL_KEYPREFIX      broker global_keyprefix
"""
import os
import sys

sys.path.insert(0, os.environ['CELERITY_INTEROP_DIR'])

from py_app import app  # noqa: E402

opts = {}
if os.environ.get('REDIS_VISIBILITY_TIMEOUT'):
    opts['visibility_timeout'] = float(os.environ['REDIS_VISIBILITY_TIMEOUT'])
if os.environ.get('REDIS_GLOBAL_KEYPREFIX'):
    opts['global_keyprefix'] = os.environ['REDIS_GLOBAL_KEYPREFIX']
app.conf.broker_transport_options = opts


@app.task(name='interop.retry', bind=True, max_retries=5)
def retry(self, times):
    """Retry `times` times (0.1 s apart), then return the retry count."""
    if self.request.retries < times:
        raise self.retry(countdown=0.1)
    return self.request.retries


@app.task(name='interop_bench.noop', acks_late=True, ignore_result=True)
def noop():
    """The benchmark's no-op task (acks_late, result ignored)."""
