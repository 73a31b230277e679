#!/usr/bin/python3
"""Regenerates the golden vectors of codec/compress with the real kombu.

Run from this directory with /usr/bin/python3 gen.py. For each compressor
kombu has here (brotli and zstd need python3-brotli and python3-zstandard),
it writes sample.<ext>: kombu.compression.compress of sample.json, and
bomb.<ext>: 64 MiB + 1 zero bytes (one byte over compress.DefaultLimit).
"""
import kombu.compression as c

EXT = {
    'application/x-gzip': 'zlib',
    'application/x-bz2': 'bz2',
    'application/x-lzma': 'xz',
    'application/x-brotli': 'br',
    'application/zstd': 'zst',
}

sample = open('sample.json', 'rb').read()
bomb = bytes(64 << 20) + b'\0'
for mime, ext in EXT.items():
    if mime not in c.encoders():
        print('kombu has no', mime, '- skipped')
        continue
    body, ctype = c.compress(sample, mime)
    assert ctype == mime
    open('sample.' + ext, 'wb').write(body)
    body, _ = c.compress(bomb, mime)
    open('bomb.' + ext, 'wb').write(body)
    print(mime, 'sample', len(open('sample.' + ext, 'rb').read()), 'bomb', len(body))
