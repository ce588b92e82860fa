#!/usr/bin/env python3
"""Writes tests/fuzz/seeds/session/: session_fuzz inputs that each serve a real
exchange, for libFuzzer (make fuzz) and the replay (make test) to start from.

An input is two set-up bytes (bit 0 trusted proxy, bit 1 PROXY header
expected; then the small-limits bits of limits_from) and steps, one byte
each, low three bits the action (see run() in session_fuzz.cpp):
  0  feed the next (byte >> 3) + 1 bytes      4  write ((byte >> 3) * 37 + 1) bytes
  2  hand out complete requests               5  the client's EOF
  3  answer one, then two bytes: how, size    6  refuse keep-alive
"""
import pathlib

REQUESTS = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "post": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "chunked": b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\nTrailer: v\r\n\r\n",
    "head-then-1.0": b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    "expect": b"PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    "proxy": b"PROXY TCP4 1.2.3.4 5.6.7.8 80 90\r\n"
             b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n",
    "proxy-v2": b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([1, 2, 3, 4, 5, 6, 7, 8])
                + b"\x00\x50\x00\x5a" + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "long-target": b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "close-then-more": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                       b"GET / HTTP/1.1\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" * 3,
}
# (set-up, limits, answers as (how, size), steps after the answers)
SHAPES = {
    "plain": (0, 0x00, [(0x00, 13), (0x00, 5), (0x00, 1)], b""),
    "small-limits": (3, 0x3F, [(0x48, 7), (0x80, 3), (0x02, 0)], b"\x05"),
    "odd-answers": (1, 0x00, [(0x11, 2), (0x21, 0), (0xC5, 9)], b"\x06"),
}


def feed(data: bytes) -> bytes:
    steps = b""
    while data:
        chunk, data = data[:32], data[32:]
        steps += bytes([(len(chunk) - 1) << 3]) + chunk
    return steps


def program(request: bytes, shape) -> bytes:
    setup, limits, answers, tail = shape
    steps = bytes([setup, limits]) + feed(request) + b"\x02"
    for how, size in answers:
        steps += bytes([0x03, how, size])
    return steps + bytes([4 | 31 << 3]) * 4 + tail


def main() -> None:
    out = pathlib.Path(__file__).parent / "seeds" / "session"
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    for request_name, request in REQUESTS.items():
        for shape_name, shape in SHAPES.items():
            (out / f"{request_name}.{shape_name}").write_bytes(program(request, shape))


if __name__ == "__main__":
    main()
