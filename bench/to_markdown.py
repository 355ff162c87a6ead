#!/usr/bin/env python3
"""Prints a bench result (bench/results/*.json) as the Markdown table of docs/performance.md.

  bench/to_markdown.py [bench/results/latest.json]
  bench/to_markdown.py --outside [bench/results/latest.json]   # the outside client's table
"""
import json
import re
import sys


def num(value, digits=0):
    if value in (None, "") or value == 0:
        return ""
    return f"{value:.{digits}f}"


def outside(run):
    """The "outside:" rows side by side with the bench client's (from their verdicts)."""
    print("| scenario | in flight | outside: echo QPS | outside: scenario QPS | ×echo | "
          "bench client: scenario QPS (×echo), side by side | outside rate over the bench "
          "client's (median of the slices) | service µs/call: outside, bench "
          "client | client µs/call: outside, bench client | verdict |")
    print("|---|---:|---:|---:|---:|---|---:|---|---|---|")
    pattern = re.compile(r"^(\w+) \((\d+)/s against (\d+)/s(?:, ([\d.]+)x by the slices' median)?; "
                         r"bench client ([\d.]+)x at (\d+)/s "
                         r"side by side; service CPU ([\d.]+) us/call, ([\d.]+) with the bench "
                         r"client; client CPU ([\d.]+) us/call, the bench client's ([\d.]+)\)")
    for r in run["rows"]:
        if r.get("group") != "outside" or not r.get("ran"):
            continue
        m = pattern.match(r.get("verdict", ""))
        if not m:
            continue
        print(f"| {r['operation'][len('outside: '):]} | {r['in_flight']} | "
              f"{r['baseline_qps']:.0f} | {r['qps']:.0f} | {r['ratio_qps']:.2f} | "
              f"{m.group(6)} ({float(m.group(5)):.2f}) | {m.group(4) or ''} | "
              f"{m.group(7)}, {m.group(8)} | {m.group(9)}, {m.group(10)} | {m.group(1)} |")


def main():
    args = [a for a in sys.argv[1:] if a != "--outside"]
    path = args[0] if args else "bench/results/latest.json"
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    if "--outside" in sys.argv[1:]:
        outside(run)
        return
    print(f"Run {run['started']}: {run['seeded']} MCIs, {run['templates']} ServerTemplates, "
          f"{run['channels']} channels, {run['seconds']:g} s per scenario, {run['cores']} cores. "
          "×QPS and ×p99: the row over its baseline in the same run (paired rows, measured in "
          "rounds: the median of their slices' ratios, each slice over the mean of the baseline "
          "slices around it).\n")
    print("| operation | in flight | QPS | p50 ms | p99 ms | p999 ms | service CPU µs/op | "
          "PostgreSQL CPU µs/op | client CPU µs/op | baseline (QPS) | ×QPS | ×p99 | target | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
    for r in run["rows"]:
        if not r.get("ran"):
            print(f"| {r['operation']} | | | | | | | | | | | | {r.get('target', '')} | "
                  f"not run: {r.get('not_run', r.get('note', ''))} |")
            continue
        if "rss_mib" in r:
            print(f"| {r['operation']} | | | | | | RSS {r['rss_mib']:.1f} MiB | | | | | | "
                  f"{r.get('target', '')} | {r.get('verdict', '')} |")
            continue
        baseline = (f"{r['baseline']} ({r['baseline_qps']:.0f})" if r.get("baseline") else "")
        verdict = r.get("verdict", "")
        if r.get("note") and r.get("target"):
            verdict = f"{verdict} — {r['note']}"
        print(f"| {r['operation']} | {r['in_flight'] or ''} | {num(r.get('qps'))} | "
              f"{num(r.get('p50_ms'), 3)} | {num(r.get('p99_ms'), 3)} | "
              f"{num(r.get('p999_ms'), 3)} | {num(r.get('server_cpu_us_per_op'), 1)} | "
              f"{num(r.get('pg_cpu_us_per_op'), 0)} | {num(r.get('client_cpu_us_per_op'), 1)} | "
              f"{baseline} | {num(r.get('ratio_qps'), 2)} | "
              f"{num(r.get('ratio_p99'), 2)} | {r.get('target', '')} | {verdict} |")


if __name__ == "__main__":
    main()
