#!/usr/bin/env python3
"""Compares the ratios of bench runs (bench/results/*.json): does a rerun give ratios within ±15%?

  bench/compare.py A.json B.json [C.json ...]

For every row with a ratio to its baseline (×QPS: the reads over echo, the deep pages over their
first, the writes over pgbench, the outside client's rows over its echo), prints the ratio in each
run and its change from each run to the next, then how many of the rows stayed within ±15% for
each consecutive pair and the largest spread of each row over all the runs. Exits 1 when some
row of some consecutive pair moved by more than the limit (--limit, default 0.15).
"""
import argparse
import json
import sys


def ratios(path):
    """{(operation, in flight): ×QPS} of one run's paired rows, in the run's order."""
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    out = {}
    for r in run["rows"]:
        if r.get("ran") and r.get("ratio_qps"):
            out[(r["operation"], r.get("in_flight", 0))] = r["ratio_qps"]
    return run.get("started", path), out


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--limit", type=float, default=0.15)
    parser.add_argument("paths", nargs="+", metavar="RUN.json")
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("two runs or more")
    limit, paths = args.limit, args.paths
    runs = [ratios(p) for p in paths]
    keys = [k for k in runs[0][1] if all(k in r for _, r in runs[1:])]
    print("| operation | in flight | " + " | ".join(name for name, _ in runs) +
          " | changes | spread |")
    print("|---|---:|" + "---:|" * len(runs) + "---|---:|")
    outside = {j: [] for j in range(1, len(runs))}  # pair j-1 -> j: rows past the limit
    for key in keys:
        values = [r[key] for _, r in runs]
        changes = []
        for j in range(1, len(values)):
            change = values[j] / values[j - 1] - 1
            mark = "" if abs(change) <= limit else " !"
            if mark:
                outside[j].append(key)
            changes.append(f"{change * 100:+.0f}%{mark}")
        spread = max(values) / min(values) - 1
        print(f"| {key[0]} | {key[1]} | " + " | ".join(f"{v:.2f}" for v in values) +
              f" | {', '.join(changes)} | {spread * 100:.0f}% |")
    print()
    failed = False
    for j in range(1, len(runs)):
        within = len(keys) - len(outside[j])
        print(f"{runs[j - 1][0]} -> {runs[j][0]}: {within} of {len(keys)} ratios within "
              f"±{limit * 100:.0f}%" +
              ("" if not outside[j] else
               " (outside: " + "; ".join(f"{op} @{n}" for op, n in outside[j]) + ")"))
        failed = failed or bool(outside[j])
    missing = sorted(set().union(*(r.keys() for _, r in runs)) - set(keys))
    if missing:
        print("not in every run: " + "; ".join(f"{op} @{n}" for op, n in missing))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
