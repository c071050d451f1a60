"""The project's local DynamoDB (scripts/moto_server.py) that also counts the calls it serves.

Both apps of bench/peer.sh talk to this one server, so their DynamoDB calls are counted in
the same place and the same way: by the operation in each request's `X-Amz-Target` header
(`DynamoDB_20120810.GetItem` counts as `GetItem`). Counting here, inside the server, adds
no network hop that would slow one app more than the other.

    GET    /_peer_bench/calls   {"GetItem": 812, "UpdateItem": 188, ...} since the last reset
    DELETE /_peer_bench/calls   resets the counts

Usage: python bench/peer/moto_counting.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import collections
import importlib.util
import json
import pathlib
import threading

COUNTS_PATH = "/_peer_bench/calls"
SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts"

# Loading scripts/moto_server.py installs its one-request-at-a-time wrapper around moto's
# app; counting wraps that, so the benchmark runs exactly the server the tests use.
_spec = importlib.util.spec_from_file_location("moto_server", SCRIPTS / "moto_server.py")
moto_server = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(moto_server)
_serialized_run_simple = moto_server.moto.server.run_simple

_counts = collections.Counter()
_counts_lock = threading.Lock()


def _json(start_response, body):
    payload = json.dumps(body, sort_keys=True).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def _counting(app):
    def handle(environ, start_response):
        if environ.get("PATH_INFO") == COUNTS_PATH:
            with _counts_lock:
                snapshot = dict(_counts)
                if environ.get("REQUEST_METHOD") == "DELETE":
                    _counts.clear()
            return _json(start_response, snapshot)
        service, _, operation = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
        if service.startswith("DynamoDB_") and operation:
            with _counts_lock:
                _counts[operation] += 1
        return app(environ, start_response)

    return handle


def _run_simple_counting(host, port, app, **kwargs):
    _serialized_run_simple(host, port, _counting(app), **kwargs)


moto_server.moto.server.run_simple = _run_simple_counting

if __name__ == "__main__":
    moto_server.moto.server.main()
