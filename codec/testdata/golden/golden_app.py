"""Celery app used by capture.py to produce golden vectors.

It is the shared interop app (../../../../shared/interop/py_app.py, tasks
interop.add/mul/xsum/fail/sleep/echo) plus two tasks that the interop app
does not have:

* golden.retry(x): calls self.retry() once, re-publishing to the queue
  "golden.retry" (which no worker consumes) so the retry message can be read.
* golden.slow(seconds): sleeps, so that its STARTED record can be read
  (task_track_started is on).
"""
import os
import sys
import time

INTEROP = os.environ.get('CELERITY_INTEROP_DIR') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'shared', 'interop')
sys.path.insert(0, os.path.abspath(INTEROP))

from py_app import add, app, echo, fail, mul, sleep, xsum  # noqa: E402,F401

app.conf.task_track_started = True
if os.environ.get('GOLDEN_PROTOCOL'):
    app.conf.task_protocol = int(os.environ['GOLDEN_PROTOCOL'])


@app.task(name='golden.retry', bind=True, max_retries=3)
def retry(self, x):
    raise self.retry(countdown=60, queue='golden.retry', exc=ValueError('try again', x))


@app.task(name='golden.slow')
def slow(seconds):
    time.sleep(float(seconds))
    return seconds
