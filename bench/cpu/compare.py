#!/usr/bin/env python3
"""Puts drive.py's figures for each DynamoDB endpoint side by side: what one DynamoDB call
costs the function (the bare handler's calls by hand minus the bare handler alone) and what
the layer's own code costs (behind the layer minus the same calls by hand, batch by batch).
Run by bench/cpu.sh.

    compare.py OUT.json FIGURES [FIGURES...]    # FIGURES: drive.py's JSON without .json
"""
import json
import os
import statistics
import sys

READ, CHANGE = "read-only, with a cookie", "change, with a cookie"


def paired(samples, a, b):
    """Median over rounds of a - b, taken round by round (the same batches)."""
    return statistics.median(x["cpu_us"] - y["cpu_us"] for x, y in zip(samples[a], samples[b]))


def main():
    out, *paths = sys.argv[1:]
    combined, rows = {}, []
    for path in paths:
        label = os.path.basename(path)
        with open(f"{path}.json") as f:
            figures = json.load(f)
        combined[label] = figures
        samples, medians = figures["samples"], figures["medians"]

        def spread(key):
            values = [s["cpu_us"] for s in samples[key]]
            return f"{min(values):.0f}–{max(values):.0f}"

        bare = medians["bare/untouched"]["cpu_us"]
        read_call = medians[f"bare/{READ}"]["cpu_us"] - bare
        change_calls = medians[f"bare/{CHANGE}"]["cpu_us"] - bare
        rows.append(
            f"| {label} | {bare:.0f} ({spread('bare/untouched')}) "
            f"| {read_call:.0f} | {change_calls / 2:.0f} "
            f"| {paired(samples, f'layer/{READ}', f'bare/{READ}'):+.0f} "
            f"| {paired(samples, f'layer/{CHANGE}', f'bare/{CHANGE}'):+.0f} "
            f"| {figures['rounds']} × {figures['requests']}, load {' '.join(figures['loadavg'])} |")
    with open(out, "w") as f:
        json.dump(combined, f, indent=2)
    print("\nPer DynamoDB endpoint, CPU µs of the function's process (medians over the rounds; "
          "bare handler with its spread):\n")
    print("| endpoint | bare handler | one GetItem (by hand − bare) "
          "| a call of GetItem + UpdateItem (÷ 2) | the layer's own code, read "
          "| the layer's own code, change | rounds × requests |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    print("\nkeep-alive: dynalite keeps the SDK's connection open, as DynamoDB does; "
          "connection-per-call: moto closes it after every answer, so each call also opens a "
          "TCP connection.")


if __name__ == "__main__":
    main()
