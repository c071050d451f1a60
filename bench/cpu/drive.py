#!/usr/bin/env python3
"""Drives the lambda_cpu functions through the Lambda runtime emulator and reads their
processes' CPU time around each batch of requests. Run by bench/cpu.sh; prints a table and
writes the figures as JSON.

    drive.py OUT.json EMULATOR_URL BARE_PID LAYER_PID [BASELINE_LAYER_PID]

The functions are cpu-bare (the handler alone), cpu-layer (the same handler behind the
layer) and, when a baseline binary was built, cpu-baseline-layer (behind the layer of the
baseline commit).

CPU time of a process: the sum over its threads of the first field of
/proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU; precise), cross-checked with
utime + stime from /proc/<pid>/stat (clock ticks, which also count threads that ended).
Each batch starts and ends with the functions idle (blocked on the runtime API's next
event), so a batch of N requests holds exactly N whole invocations of each. Within a batch
the functions take turns, one request each, so all of them run under the same conditions
of a shared machine, and differences are taken batch by batch.
"""
import http.client
import json
import os
import statistics
import sys
import time
from urllib.parse import urlsplit

REQUESTS = int(os.environ.get("REQUESTS", "1000"))
WARMUP = int(os.environ.get("WARMUP", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
TICK = os.sysconf("SC_CLK_TCK")

# What the handler does: (row, route without the layer, route behind the layer).
REQUEST_KINDS = [
    ("untouched", "untouched", "untouched"),
    ("read-only, with a cookie", "sdk-read", "read"),
    ("change, with a cookie", "sdk-change", "change"),
]


def cpu(pid):
    """(schedstat seconds summed over live threads, utime+stime seconds, thread ids)."""
    task_dir = f"/proc/{pid}/task"
    total_ns, tids = 0, set()
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/schedstat") as f:
                total_ns += int(f.read().split()[0])
            tids.add(tid)
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return total_ns / 1e9, ticks / TICK, tids


class Client:
    def __init__(self, base):
        parts = urlsplit(base)
        self.prefix = parts.path.rstrip("/")
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def get(self, path, cookie=None, check=True):
        headers = {"cookie": cookie} if cookie else {}
        self.conn.request("GET", f"{self.prefix}{path}", headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        if check and response.status != 200:
            sys.exit(f"GET {path} answered {response.status}: {body[:200]!r}")
        return response


def wait_until_polling(client, fn):
    """The emulator answers an error until the function's process asks it for an event."""
    for _ in range(100):
        if client.get(f"/{fn}/untouched", check=False).status == 200:
            return
        time.sleep(0.1)
    sys.exit(f"function {fn} never answered through the emulator")


def new_session(client, fn):
    set_cookie = client.get(f"/{fn}/change").getheader("set-cookie")
    if not set_cookie:
        sys.exit(f"GET /{fn}/change without a cookie answered no Set-Cookie")
    return set_cookie.split(";", 1)[0]


def batch(client, participants, count):
    """Sends `count` requests to each participant (fn, pid, route, cookie), round-robin, so
    every function runs under the same conditions on a shared machine; returns per
    participant the CPU seconds (schedstat, stat) and the wall seconds of the whole batch."""
    time.sleep(0.05)  # the functions finish their previous invocation and wait for the next
    before = [cpu(pid) for _, pid, _, _ in participants]
    started = time.perf_counter()
    for _ in range(count):
        for fn, _, route, cookie in participants:
            client.get(f"/{fn}/{route}", cookie)
    wall = time.perf_counter() - started
    time.sleep(0.05)
    after = [cpu(pid) for _, pid, _, _ in participants]
    results = []
    for (fn, *_), b, a in zip(participants, before, after):
        if b[2] - a[2]:
            print(f"  note: threads {sorted(b[2] - a[2])} of {fn} ended during the batch; "
                  "the schedstat figure misses their time", file=sys.stderr)
        results.append((a[0] - b[0], a[1] - b[1], wall))
    return results


def main():
    out, base = sys.argv[1:3]
    pids = [int(p) for p in sys.argv[3:]]
    functions = {"bare": ("cpu-bare", pids[0]), "layer": ("cpu-layer", pids[1])}
    if len(pids) > 2:
        functions["baseline"] = ("cpu-baseline-layer", pids[2])
    variants = [v for v in ("bare", "layer", "baseline") if v in functions]

    client = Client(base)
    for fn, _ in functions.values():
        wait_until_polling(client, fn)
    samples = {(variant, row): [] for variant in variants for row, *_ in REQUEST_KINDS}
    for round_ in range(ROUNDS):
        for row, bare_route, layer_route in REQUEST_KINDS:
            participants = []
            for variant in variants:
                fn, pid = functions[variant]
                route = bare_route if variant == "bare" else layer_route
                # A fresh session for each batch, so no read-only request is due a touch
                # (touch_after) during the batch.
                with_cookie = variant != "bare" and route != "untouched"
                cookie = new_session(client, fn) if with_cookie else None
                participants.append((fn, pid, route, cookie))
            # The bare handler gets the same Cookie header (and ignores it): parsing the event
            # it comes in is the runtime's work, not the layer's.
            layer_cookie = participants[1][3]
            participants[0] = participants[0][:3] + (layer_cookie,)
            batch(client, participants, WARMUP)
            measured = batch(client, participants, REQUESTS)
            for variant, (fn, _, route, _), (sched, ticks, wall) in zip(
                    variants, participants, measured):
                sample = {
                    "cpu_us": sched / REQUESTS * 1e6,
                    "cpu_us_stat": ticks / REQUESTS * 1e6,
                }
                samples[(variant, row)].append(sample)
                print(f"round {round_ + 1}: {fn:18} {route:10} {sample['cpu_us']:8.1f} µs CPU"
                      f"/request (stat {sample['cpu_us_stat']:.0f})", file=sys.stderr)
            print(f"round {round_ + 1}: {row}: {wall / REQUESTS * 1e3:.2f} ms wall per "
                  f"{len(participants)} requests", file=sys.stderr)

    def median(variant, row, metric="cpu_us"):
        return statistics.median(s[metric] for s in samples[(variant, row)])

    def paired(a, b, row):
        """Median over rounds of a - b, measured side by side in the same batches."""
        return statistics.median(x["cpu_us"] - y["cpu_us"]
                                 for x, y in zip(samples[(a, row)], samples[(b, row)]))

    result = {
        "requests": REQUESTS, "warmup": WARMUP, "rounds": ROUNDS,
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "medians": {f"{v}/{row}": {m: median(v, row, m) for m in ("cpu_us", "cpu_us_stat")}
                    for v in variants for row, *_ in REQUEST_KINDS},
        "samples": {f"{v}/{row}": s for (v, row), s in samples.items()},
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=2)

    bare = median("bare", "untouched")
    endpoint = os.path.basename(out).removesuffix(".json")
    print(f"\n{endpoint}: CPU time of the function's process per request, µs: median of {ROUNDS} rounds "
          f"of {REQUESTS} requests (load average {' '.join(result['loadavg'])})\n")
    header = ("| request | bare handler | its DynamoDB calls by hand | behind the layer "
              "| layer + its calls: µs, share | the layer's own code: µs, share |")
    if "baseline" in functions:
        third = (f"behind the layer with {os.environ['VARIANT']}" if os.environ.get("VARIANT")
                 else "behind the baseline's layer")
        header += f" {third} | behind the layer − that (after − before) |"
    print(header)
    print("|---" + "|---:" * (header.count("|") - 2) + "|")
    for row, *_ in REQUEST_KINDS:
        by_hand = median("bare", row)
        layer = median("layer", row)
        own = paired("layer", "bare", row)
        line = (f"| {row} | {bare:.0f} | {by_hand:.0f} | {layer:.0f} | "
                f"{layer - bare:+.0f}, {(layer - bare) / layer:.0%} | "
                f"{own:+.0f}, {own / layer:.0%} |")
        if "baseline" in functions:
            line += (f" {median('baseline', row):.0f} | "
                     f"{paired('layer', 'baseline', row):+.0f} |")
        print(line)
    print("\nThe layer's own code: behind the layer minus the bare handler making the same "
          "DynamoDB calls by hand, in the same batches (median of the rounds' differences); "
          "for 'untouched' there are no calls. The last column: behind the layer minus the "
          "third process (the baseline's layer, or the layer with VARIANT), likewise.")


if __name__ == "__main__":
    main()
