"""Prints bench/peer.sh's figures as Markdown, from the files it left in its work directory.

Usage: python3 report.py WORK_DIR DURATION_SECONDS CONNECTIONS
"""

import json
import os
import pathlib
import subprocess
import sys

APPS = ("session-api", "express-session")


def read_json(work, name):
    return json.loads((work / name).read_text())


def version(command):
    # `wrk --version` prints its version with the usage and exits 1: read whatever it printed.
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return (done.stdout or done.stderr).split("\n")[0].strip() or "unknown"


def cpu_model():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def mib(byte_count):
    return f"{byte_count:,} bytes ({byte_count / 2**20:.1f} MiB)"


def cold_start_row(label, cold):
    runs = ", ".join(f"{t:.1f}" for t in cold["runs_ms"])
    return f"| {label} (median of {len(cold['runs_ms'])}) | {cold['median_ms']:.1f} ms (runs: {runs}) |"


def main():
    work, duration, connections = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    load = {app: read_json(work, f"{app}.load.json") for app in APPS}
    health = {app: read_json(work, f"{app}.health.json") for app in APPS}
    calls = {app: read_json(work, f"{app}.calls.json") for app in APPS}
    rss_kib = {app: int((work / f"{app}.rss_kib").read_text()) for app in APPS}
    answered = {app: load[app]["requests"] for app in APPS}

    rows = []

    def row(label, values, fmt, with_ratio=True):
        ours, theirs = (values[app] for app in APPS)
        shown = f"{ours / theirs:.2f}" if with_ratio and theirs else ""
        rows.append(f"| {label} | {fmt(ours)} | {fmt(theirs)} | {shown} |")

    def ms(value):
        return f"{value:.2f}"

    def per_request(count_of):
        return {app: count_of(app) / answered[app] for app in APPS}

    row("requests answered", answered, str, with_ratio=False)
    row("requests per second", {a: answered[a] / (load[a]["duration_us"] / 1e6) for a in APPS}, lambda v: f"{v:.0f}")
    row("p50 latency (ms)", {a: load[a]["p50_us"] / 1000 for a in APPS}, ms)
    row("p99 latency (ms)", {a: load[a]["p99_us"] / 1000 for a in APPS}, ms)
    row("DynamoDB calls per request", per_request(lambda a: sum(calls[a].values())), ms)
    for operation in sorted(set(calls["session-api"]) | set(calls["express-session"])):
        row(f"&nbsp;&nbsp;{operation} per request", per_request(lambda a: calls[a].get(operation, 0)), ms)
    def cpu_us(app):
        ticks, per_second = (int(v) for v in (work / f"{app}.cpu_ticks").read_text().split())
        return ticks / per_second * 1e6 / answered[app]

    row("CPU per request, µs (utime + stime of the app's processes)",
        {a: cpu_us(a) for a in APPS}, lambda v: f"{v:.0f}")
    row("GET /health p50 (ms): the HTTP path alone", {a: health[a]["p50_us"] / 1000 for a in APPS}, ms)
    row("peak RSS per process (MiB)", {a: rss_kib[a] / 1024 for a in APPS}, lambda v: f"{v:.1f}")
    errors = {a: load[a]["non_2xx_3xx"] + load[a]["socket_errors"] for a in APPS}
    row("errors (non-2xx or socket)", errors, str, with_ratio=False)

    print()
    print(f"### Side by side: {duration} s each, 80 % GET /session (read-only) + 20 % GET /counter "
          f"(changes the session), {connections} connection(s)")
    print()
    print("| | session-api | express-session + connect-dynamodb | session-api / express |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))

    print()
    print("### session-api alone")
    print()
    print("| | |")
    print("|---|---|")
    print(cold_start_row("cold start: process start -> first GET /health response",
                         read_json(work, "cold-health.json")))
    print(cold_start_row("cold start: process start -> first GET /counter response (1 PutItem)",
                         read_json(work, "cold-counter.json")))
    print(f"| peak RSS during the run (VmHWM) | {rss_kib['session-api'] / 1024:.1f} MiB |")
    print(f"| release binary, stripped (target/release/session-api) | "
          f"{mib(int((work / 'binary_bytes').read_text()))} |")
    bootstrap = work / "bootstrap_bytes"
    if bootstrap.exists():
        print(f"| target/lambda/session-api/bootstrap (from the last scripts/build-functions) | "
              f"{mib(int(bootstrap.read_text()))} |")

    wrk = version(["wrk", "--version"]).split(" Copyright")[0]
    print()
    print(f"Load: {wrk}, 1 thread, {connections} connection(s), bench/peer/mix.lua. session-api: "
          f"release build, {connections} Lambda instance(s) behind `cargo lambda watch "
          f"--only-lambda-apis`, whose HTTP -> event -> runtime API hop is in its latency. "
          f"express-session: one Node.js process, plain HTTP. DynamoDB: one moto server "
          f"(scripts/moto_server.py, one request at a time), calls counted inside it by "
          f"X-Amz-Target.")
    one, five, _ = os.getloadavg()
    print(f"Machine: {cpu_model()}, {len(os.sched_getaffinity(0))} CPUs, load average "
          f"{one:.2f} / {five:.2f} (1 / 5 min) at the end; {version(['rustc', '--version'])}, "
          f"node {version(['node', '--version'])}.")


if __name__ == "__main__":
    main()
