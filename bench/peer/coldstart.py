"""Cold starts of a Lambda function behind the runtime emulator (cargo lambda watch).

Each run starts the function's process, sends one request to the emulator at once (the
emulator holds it until the new process asks for its first event) and stops the clock when
the response arrives: process start -> first response. Then it stops the process. Prints one
JSON line: {"runs_ms": [...], "median_ms": m}.

Usage: python3 coldstart.py RUNS URL -- COMMAND...   (the process inherits this environment)
"""

import json
import statistics
import subprocess
import sys
import time
import urllib.request


def cold_start_ms(url, command):
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        return (time.perf_counter() - started) * 1000
    finally:
        process.terminate()
        process.wait()


def main():
    runs, url, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit(__doc__)
    times = [cold_start_ms(url, command) for _ in range(int(runs))]
    print(json.dumps({"runs_ms": [round(t, 1) for t in times], "median_ms": round(statistics.median(times), 1)}))


if __name__ == "__main__":
    main()
