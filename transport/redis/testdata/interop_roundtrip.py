"""Measure the Python client's round trip (apply_async + get) against a
running worker: prints {"n", "p50_us", "p99_us"}.

Usage: interop_roundtrip.py QUEUE N
"""
import json
import sys
import time

import interop_app  # noqa: F401  (transport options)
from py_app import add

queue, n = sys.argv[1], int(sys.argv[2])
for _ in range(20):  # warm up connections
    r = add.apply_async((1, 2), queue=queue)
    r.get(timeout=30)
    r.forget()
lat = []
for _ in range(n):
    start = time.perf_counter()
    r = add.apply_async((1, 2), queue=queue)
    r.get(timeout=30)
    lat.append(time.perf_counter() - start)
    r.forget()
lat.sort()
print(json.dumps({'n': n, 'p50_us': lat[n // 2] * 1e6, 'p99_us': lat[n * 99 // 100] * 1e6}))
