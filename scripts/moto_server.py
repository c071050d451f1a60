"""moto's DynamoDB server with each request applied atomically.

moto serves requests on several threads and its DynamoDB backend does not lock, so two
concurrent conditional writes to one item can both pass their condition. Real DynamoDB
applies each write to an item atomically; the locking and concurrency tests depend on
that. This launcher runs moto's own server with every request handled under one lock.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import threading

import moto.server

_run_simple = moto.server.run_simple
_lock = threading.Lock()


def _serialized(app):
    def handle(environ, start_response):
        with _lock:
            # Produce the whole body inside the lock: the write happens while it is built.
            return list(app(environ, start_response))

    return handle


def _run_simple_serialized(host, port, app, **kwargs):
    _run_simple(host, port, _serialized(app), **kwargs)


moto.server.run_simple = _run_simple_serialized

if __name__ == "__main__":
    moto.server.main()
