#!/usr/bin/python3
"""Regenerates the golden bodies of codec/serializer with the real kombu.

Run from this directory with /usr/bin/python3 gen.py. Each file is
kombu.serialization.dumps of the same Celery-like value with one serializer
(bytes only where the format carries them: kombu 5.2's JSON raises
EncodeError for bytes). The Go tests decode them and check every field;
they also seed the fuzz targets.
"""
import datetime
import decimal
import uuid

from kombu.serialization import dumps

utc = datetime.timezone.utc
value = [
    [2, -3, 2**53 + 1, 2**63 + 5, 1.5, 1e21, 'h\u00e9llo \u2603 \U0001F600', '', None, True, False],
    {
        'when': datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=utc),
        'naive': datetime.datetime(2024, 1, 2, 3, 4, 5),
        'tz': datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))),
        'tuple': (1, 'two'),
        'nested': {'list': [[], {}], 'k': 'v'},
        'tricky': ['yes', 'no', 'null', '~', '1e3', '.inf', '=', '1:20', '0x1F', '2024-01-02', '- x', 'a: b', '#c',
                   'line1\nline2', '\x00\x07\x7f', '\u2028', ' lead', 'trail ', '"quoted"', 'back\\slash'],
    },
    {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None},
]
json_only = {'date': datetime.date(2024, 1, 2), 'time': datetime.time(3, 4, 5, 6),
             'uuid': uuid.UUID('00000000-0000-0000-0000-000000000007'), 'decimal': decimal.Decimal('1.10')}
binary = {'bytes': b'\x00\x01\xff', 'text_bytes': b'caf\xc3\xa9'}

for name, extra, ext in (('json', json_only, 'json'), ('msgpack', binary, 'msgpack'), ('yaml', binary, 'yaml')):
    v = [list(value[0]), dict(value[1], **extra), value[2]]
    if name == 'msgpack':
        # msgpack has no datetime type in kombu 5.2 (packb raises TypeError).
        v[1] = {k: x for k, x in v[1].items() if not isinstance(x, datetime.datetime)}
    ctype, enc, body = dumps(v, serializer=name)
    body = body.encode('utf-8') if isinstance(body, str) else body
    open('kombu.' + ext, 'wb').write(body)
    print(name, ctype, enc, len(body))
