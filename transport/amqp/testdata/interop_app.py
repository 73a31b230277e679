"""The shared interop app (../../../../shared/interop/py_app.py) plus what the
AMQP transport tests need: x-max-priority on the task queues and a task that
retries.

Environment (besides py_app's):
    CELERITY_INTEROP_DIR   directory of py_app.py (required)
    AMQP_MAX_PRIORITY      task_queue_max_priority (must match the Go side's
                           WithMaxPriority, or RabbitMQ refuses the queue)
    RESULT_SERIALIZER      result_serializer (default json)
    PREFETCH_MULTIPLIER    worker_prefetch_multiplier (default 1)
"""
import os
import sys

sys.path.insert(0, os.environ['CELERITY_INTEROP_DIR'])

from py_app import app  # noqa: E402

if os.environ.get('AMQP_MAX_PRIORITY'):
    app.conf.task_queue_max_priority = int(os.environ['AMQP_MAX_PRIORITY'])
if os.environ.get('RESULT_SERIALIZER'):
    app.conf.result_serializer = os.environ['RESULT_SERIALIZER']
# Hold as little as possible, so a killed worker leaves little behind
# (benchmarks set Celery's default, 4).
app.conf.worker_prefetch_multiplier = int(os.environ.get('PREFETCH_MULTIPLIER', '1'))


@app.task(name='interop.retry', bind=True, max_retries=5)
def retry(self, times):
    """Retry `times` times (0.1 s apart), then return the retry count."""
    if self.request.retries < times:
        raise self.retry(countdown=0.1)
    return self.request.retries


@app.task(name='interop.noop', ignore_result=True)
def noop():
    """Do nothing (the drain benchmark's task)."""
