"""Evaluate Celery 5.2.6 crontab schedules for the Go agreement test.

Reads one JSON object per line on stdin:
  {"tz": "Europe/Berlin", "spec": [minute, hour, day_of_week, day_of_month,
   month_of_year], "last": unix seconds, "now": unix seconds}
and writes one JSON object per line:
  {"due": bool, "next": seconds, "wall": "YYYY-MM-DDTHH:MM"}
where due/next are crontab.is_due(last) with now as the clock, and wall is
the wall-clock time remaining_delta computes for the run after last
(start + delta, before any UTC offset is applied).
"""
import json
import sys
from datetime import datetime

import pytz
from celery import Celery
from celery.schedules import crontab

apps = {}


def app_for(tz):
    if tz not in apps:
        app = Celery(set_as_current=False)
        app.conf.timezone = tz
        app.conf.enable_utc = True
        apps[tz] = app
    return apps[tz]


for line in sys.stdin:
    c = json.loads(line)
    tz = pytz.timezone(c["tz"])
    last = datetime.fromtimestamp(c["last"], tz)
    now = datetime.fromtimestamp(c["now"], tz)
    cr = crontab(*c["spec"], nowfun=lambda now=now: now, app=app_for(c["tz"]))
    try:
        due, nxt = cr.is_due(last)
        start, delta, _ = cr.remaining_delta(last)
        out = {"due": due, "next": nxt, "wall": (start + delta).strftime("%Y-%m-%dT%H:%M")}
    except Exception as exc:  # report, do not stop the batch
        out = {"error": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(out) + "\n")
