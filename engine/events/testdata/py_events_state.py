"""Feed a worker's events into celery.events.state.State -- the model
Flower's dashboard, task list and API are built on -- and print what it
holds about the worker and its tasks, as JSON.

Usage: CELERY_BROKER_URL=... python3 py_events_state.py <hostname> <timeout_s>

It waits until State shows the worker alive, with a heartbeat counting
two processed tasks, one SUCCESS task named ev.add and one FAILURE task
named ev.fail (or until the timeout passes); it
prints "capturing" once its receiver consumes, so the caller knows when
events reach it.
"""
import json
import os
import sys
import threading
import time

from celery import Celery

node, timeout = sys.argv[1], float(sys.argv[2])
app = Celery(broker=os.environ["CELERY_BROKER_URL"])
state = app.events.State()


def settled():
    return [t for t in state.tasks.values()
            if t.worker is not None and t.worker.hostname == node and t.state in ("SUCCESS", "FAILURE")]


def done():
    w = state.workers.get(node)
    names = {(t.name, t.state) for t in settled()}
    return (w is not None and w.alive and w.processed >= 2
            and ("ev.add", "SUCCESS") in names and ("ev.fail", "FAILURE") in names)


with app.connection() as conn:
    recv = app.events.Receiver(conn, handlers={"*": state.event})
    consumer = threading.Thread(target=recv.capture, kwargs={"limit": None, "timeout": None, "wakeup": True}, daemon=True)
    consumer.start()
    time.sleep(0.5)  # the receiver's queue is bound by now
    print("capturing", flush=True)
    deadline = time.time() + timeout
    while time.time() < deadline and not done():
        time.sleep(0.1)
    recv.should_stop = True

w = state.workers.get(node)
out = {"worker": None, "tasks": []}
if w is not None:
    out["worker"] = {"alive": w.alive, "processed": w.processed, "active": w.active, "sw_ident": w.sw_ident,
                     "sw_ver": w.sw_ver, "sw_sys": w.sw_sys, "freq": w.freq, "loadavg": w.loadavg,
                     "heartbeats": len(w.heartbeats), "status_string": w.status_string}
for t in settled():
    out["tasks"].append({"uuid": t.uuid, "name": t.name, "state": t.state, "args": t.args, "kwargs": t.kwargs,
                         "result": t.result, "exception": t.exception, "runtime": t.runtime,
                         "received": t.received, "started": t.started, "succeeded": t.succeeded,
                         "failed": t.failed, "retries": t.retries, "routing_key": t.routing_key,
                         "ready": t.ready, "hostname": t.worker.hostname})
print(json.dumps(out), flush=True)
