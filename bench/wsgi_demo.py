"""The bench's WSGI peer of qilin's demo app, for gunicorn sync and gthread.

The same routes the bench scenarios request from qilin, answering the same
bodies, so the comparison is one app under different servers:

    /               plaintext "Hello, World!"
    /sleep?ms=N     time.sleep(N)
    /block?ms=N     time.sleep(N)
    /static/PATH    a file under $BENCH_STATIC_DIR, through wsgi.file_wrapper

In WSGI /sleep and /block are the same call: a handler cannot give its worker
back while it waits, so sleeping holds the process (sync) or one of the
threads (gthread). That is gunicorn's model, and the contrast with qilin's
event loops, where /sleep suspends a coroutine, is what the scenario shows.
wsgi.file_wrapper with a Content-Length lets gunicorn answer with sendfile(2),
as nginx and qilin do.

    gunicorn --chdir bench -k gthread --threads 4 wsgi_demo:app
"""

import os
import time
from urllib.parse import parse_qs

STATIC_DIR = os.path.realpath(os.environ.get("BENCH_STATIC_DIR", "static"))
MAX_SLEEP_MS = 60_000  # qilin's demo bound


def respond(start_response, status, body, content_type="text/plain"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def milliseconds(environ):
    """The ms= parameter in [0, MAX_SLEEP_MS], or None when missing or bad."""
    values = parse_qs(environ.get("QUERY_STRING", "")).get("ms", [])
    if len(values) != 1 or not values[0].isdigit():
        return None
    ms = int(values[0])
    return ms if ms <= MAX_SLEEP_MS else None


def static_file(environ, start_response, relative):
    # realpath then a prefix check: "..", symlinks out of the root and
    # absolute paths all end outside STATIC_DIR and answer 404.
    path = os.path.realpath(os.path.join(STATIC_DIR, relative))
    if not path.startswith(STATIC_DIR + os.sep) or not os.path.isfile(path):
        return respond(start_response, "404 Not Found", b"Not Found\n")
    stream = open(path, "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(os.fstat(stream.fileno()).st_size))])
    return environ["wsgi.file_wrapper"](stream)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        return respond(start_response, "200 OK", b"Hello, World!")
    if path in ("/sleep", "/block"):
        ms = milliseconds(environ)
        if ms is None:
            return respond(start_response, "400 Bad Request", b"ms must be 0..60000\n")
        time.sleep(ms / 1000)
        return respond(start_response, "200 OK", f"slept {ms} ms holding the worker\n".encode())
    if path.startswith("/static/"):
        return static_file(environ, start_response, path[len("/static/"):])
    return respond(start_response, "404 Not Found", b"Not Found\n")
