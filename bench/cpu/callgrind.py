#!/usr/bin/env python3
"""Counts the instructions a request costs the lambda_cpu function, per route, with
valgrind's callgrind (run by bench/cpu.sh when PROFILE=callgrind): instruction counts do not
depend on what else the shared machine is doing, so the layer's own work (behind the layer
minus the same DynamoDB calls made by hand) is exact, not a difference of noisy CPU times.

    callgrind.py OUTDIR EMULATOR_URL BARE_PID LAYER_PID

For each route it sends WARMUP requests, zeroes the counters (callgrind_control -z), sends
REQUESTS requests and dumps the counters to OUTDIR (callgrind_control -d), then prints the
instructions per request and writes the dumps' names to OUTDIR/dumps.json, for
callgrind_annotate.
"""
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from drive import Client, new_session, wait_until_polling  # noqa: E402

REQUESTS = int(os.environ.get("REQUESTS", "200"))
WARMUP = int(os.environ.get("WARMUP", "20"))

ROUTES = [  # (function, route, with a session cookie)
    ("cpu-bare", "untouched", False),
    ("cpu-bare", "sdk-read", False),
    ("cpu-bare", "sdk-change", False),
    ("cpu-layer", "untouched", False),
    ("cpu-layer", "read", True),
    ("cpu-layer", "change", True),
]


def total_instructions(dump):
    """The `totals:` (or `summary:`) line of a callgrind dump: instructions executed."""
    with open(dump) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {dump}")


def main():
    outdir, base, bare_pid, layer_pid = sys.argv[1:5]
    pids = {"cpu-bare": bare_pid, "cpu-layer": layer_pid}
    client = Client(base)
    for fn in pids:
        wait_until_polling(client, fn)
    per_request, dumps = {}, {}
    for fn, route, with_cookie in ROUTES:
        cookie = new_session(client, fn) if with_cookie else None
        for _ in range(WARMUP):
            client.get(f"/{fn}/{route}", cookie)
        time.sleep(0.2)  # the function is back waiting for its next event
        subprocess.run(["callgrind_control", "--zero", pids[fn]], check=True, capture_output=True)
        for _ in range(REQUESTS):
            client.get(f"/{fn}/{route}", cookie)
        time.sleep(0.2)
        before = set(glob.glob(f"{outdir}/callgrind.out.{pids[fn]}*"))
        subprocess.run(["callgrind_control", f"--dump={fn}-{route}", pids[fn]], check=True,
                       capture_output=True)
        for _ in range(50):  # the dump is written asynchronously
            new = set(glob.glob(f"{outdir}/callgrind.out.{pids[fn]}*")) - before
            if new:
                break
            time.sleep(0.1)
        (dump,) = new
        time.sleep(0.2)
        dumps[f"{fn}/{route}"] = dump
        per_request[f"{fn}/{route}"] = total_instructions(dump) / REQUESTS
        print(f"{fn:10} {route:11} {per_request[f'{fn}/{route}']:>12,.0f} instructions/request",
              file=sys.stderr)
    with open(f"{outdir}/dumps.json", "w") as f:
        json.dump({"requests": REQUESTS, "per_request": per_request, "dumps": dumps}, f,
                  indent=2)
    bare = per_request["cpu-bare/untouched"]
    print(f"\nInstructions per request (callgrind, {REQUESTS} requests per route):\n")
    print("| request | bare handler | its calls by hand | behind the layer "
          "| the layer's own code |")
    print("|---|---:|---:|---:|---:|")
    for row, by_hand, layer in [("untouched", "untouched", "untouched"),
                                ("read-only, with a cookie", "sdk-read", "read"),
                                ("change, with a cookie", "sdk-change", "change")]:
        hand = per_request[f"cpu-bare/{by_hand}"]
        behind = per_request[f"cpu-layer/{layer}"]
        print(f"| {row} | {bare:,.0f} | {hand:,.0f} | {behind:,.0f} | {behind - hand:+,.0f} |")


if __name__ == "__main__":
    main()
