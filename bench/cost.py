#!/usr/bin/env python3
"""Dollars per million requests of an 80/20 read/change mix, for this store and the setups
users pick instead, from measured CPU time, DynamoDB calls and item sizes. Prints the
Markdown table of docs/performance.md ("What a million requests cost"). No I/O: every input
is below, with where it comes from, so anyone can change one and recompute.

    python3 bench/cost.py
"""
import math

# ---- prices: us-east-1, on-demand, first pricing tier ----
LAMBDA_ARM64_GB_SECOND = 0.0000133334  # $ per GB-second, arm64
LAMBDA_REQUEST = 0.20 / 1e6  # $ per request
DYNAMODB_READ_UNIT = 0.125 / 1e6  # $ per read request unit (on-demand)
DYNAMODB_WRITE_UNIT = 0.625 / 1e6  # $ per write request unit (on-demand)

# ---- the model ----
# Lambda gives a function CPU in proportion to its memory, a full vCPU at 1,769 MB: a
# process at M MB runs CPU-bound code 1769 / M times slower than on one core (one core here
# taken for one vCPU). A request's billed duration is that, plus the time it waits for
# DynamoDB, rounded up to the millisecond.
FULL_VCPU_MB = 1769
WAIT_MS_PER_CALL = 3.0  # assumed: DynamoDB's in-region latency seen from Lambda
READ_SHARE, CHANGE_SHARE = 0.8, 0.2

# DynamoDB bills a read per 4 KB of item (half for an eventually consistent read) and a
# write per KB; an UpdateItem is billed on the larger of the item before and after it.
# Item sizes: the bench's typical 1 KB session (957 B of JSON: a user, a locale, a cart).


def read_units(item_bytes, consistent):
    return math.ceil(item_bytes / 4096) * (1 if consistent else 0.5)


def write_units(item_bytes):
    return math.ceil(item_bytes / 1024)


SETUPS = [
    {
        "name": "this store (session-api's layer), Rust, arm64",
        "memory_mb": 128,
        # bench/cpu.sh, keep-alive (dynalite), behind the layer, current-thread runtime:
        # CPU µs per request (load average 4: high against a quiet machine).
        "cpu_us": {"read": 396, "change": 746},
        "calls": {"read": 1, "change": 2},  # GetItem; GetItem + UpdateItem
        # One consistent GetItem per request (a read-only request's expiry is refreshed
        # only once per touch_after, left out); the change's UpdateItem of the whole item:
        # the bench's typical 1 KB session is a 589 B item, its data 476 B of sealed bytes
        # (a Binary attribute, compressed and padded; docs/sealed-data.md, "Stored as
        # bytes"): one write unit. Before that work it was 1,318 B of base64 data + about
        # 200 B of attributes, two write units.
        "item_bytes": 589,
        "reads": {"read": (1, True), "change": (1, True)},  # (GetItems, consistent)
        "writes": {"read": 0, "change": 1},
    },
    {
        "name": "tower-sessions + tower-sessions-dynamodb-store, Rust, arm64",
        "memory_mb": 128,
        # Not run here: the same SDK calls made by hand behind the bare lambda_http handler
        # (bench/cpu.sh, keep-alive), a Query taken for a GetItem and a PutItem for an
        # UpdateItem; tower-sessions' own work left out.
        "cpu_us": {"read": 360, "change": 670},
        "calls": {"read": 1, "change": 2},  # Query; Query + PutItem (saved when modified)
        # The record as MessagePack in a Binary attribute, unencrypted: about 850 B for the
        # 957 B of JSON, plus a 49 B key (prefix + id) and the expiry: about 920 B.
        "item_bytes": 920,
        "reads": {"read": (1, False), "change": (1, False)},  # Query, eventually consistent
        "writes": {"read": 0, "change": 1},
    },
    {
        "name": "express-session + connect-dynamodb, Node.js, arm64",
        # Its process peaks at 129 MiB (bench/peer.sh): 128 MB does not hold it.
        "memory_mb": 256,
        # bench/peer.sh: utime + stime of the Node process over the 80/20 mix, per request,
        # against moto (6,294 µs, the mix's mean, for either kind); Lambda's Node runtime adds
        # its own event handling on top.
        "cpu_us": {"read": 6294, "change": 6294},
        "calls": {"read": 2, "change": 2},  # GetItem + touch (UpdateItem); GetItem + PutItem
        # The session as JSON text with express-session's cookie object (about 100 B), key
        # "sess:" + id, expires and type: about 1,140 B.
        "item_bytes": 1140,
        "reads": {"read": (1, True), "change": (1, True)},  # ConsistentRead: true
        "writes": {"read": 1, "change": 1},  # touch on every unchanged request; PutItem
    },
]


def per_request(setup, kind):
    """(billed ms, $ Lambda duration, $ read units, $ write units) of one request."""
    slowdown = FULL_VCPU_MB / setup["memory_mb"]
    ms = setup["cpu_us"][kind] / 1000 * slowdown + setup["calls"][kind] * WAIT_MS_PER_CALL
    billed_ms = math.ceil(ms)
    duration = billed_ms / 1000 * setup["memory_mb"] / 1024 * LAMBDA_ARM64_GB_SECOND
    gets, consistent = setup["reads"][kind]
    reads = gets * read_units(setup["item_bytes"], consistent) * DYNAMODB_READ_UNIT
    writes = setup["writes"][kind] * write_units(setup["item_bytes"]) * DYNAMODB_WRITE_UNIT
    return billed_ms, duration, reads, writes


def main():
    print("| setup | memory | billed ms, read / change | Lambda requests | Lambda duration "
          "| DynamoDB reads | DynamoDB writes | total per million requests |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for setup in SETUPS:
        mixed = [0.0, 0.0, 0.0]
        for kind, share in (("read", READ_SHARE), ("change", CHANGE_SHARE)):
            _, duration, reads, writes = per_request(setup, kind)
            for i, dollars in enumerate((duration, reads, writes)):
                mixed[i] += share * dollars * 1e6
        ms = [per_request(setup, kind)[0] for kind in ("read", "change")]
        requests = LAMBDA_REQUEST * 1e6
        total = requests + sum(mixed)
        print(f"| {setup['name']} | {setup['memory_mb']} MB | {ms[0]} / {ms[1]} "
              f"| ${requests:.2f} | ${mixed[0]:.2f} | ${mixed[1]:.3f} | ${mixed[2]:.3f} "
              f"| **${total:.2f}** |")


if __name__ == "__main__":
    main()
