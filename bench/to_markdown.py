#!/usr/bin/env python3
"""Prints a bench result (bench/results/*.json) as the Markdown table of docs/performance.md.

  bench/to_markdown.py [bench/results/latest.json]
"""
import json
import sys


def num(value, digits=0):
    if value in (None, "") or value == 0:
        return ""
    return f"{value:.{digits}f}"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json"
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    print(f"Run {run['started']}: {run['seeded']} MCIs, {run['templates']} ServerTemplates, "
          f"{run['channels']} channels, {run['seconds']:g} s per scenario, {run['cores']} cores. "
          "×QPS and ×p99: the row over its baseline in the same run (paired rows: the median of "
          "their slice pairs).\n")
    print("| operation | in flight | QPS | p50 ms | p99 ms | p999 ms | service CPU µs/op | "
          "PostgreSQL CPU µs/op | baseline (QPS) | ×QPS | ×p99 | target | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|")
    for r in run["rows"]:
        if not r.get("ran"):
            print(f"| {r['operation']} | | | | | | | | | | | {r.get('target', '')} | "
                  f"not run: {r.get('not_run', r.get('note', ''))} |")
            continue
        if "rss_mib" in r:
            print(f"| {r['operation']} | | | | | | RSS {r['rss_mib']:.1f} MiB | | | | | "
                  f"{r.get('target', '')} | {r.get('verdict', '')} |")
            continue
        baseline = (f"{r['baseline']} ({r['baseline_qps']:.0f})" if r.get("baseline") else "")
        verdict = r.get("verdict", "")
        if r.get("note") and r.get("target"):
            verdict = f"{verdict} — {r['note']}"
        print(f"| {r['operation']} | {r['in_flight'] or ''} | {num(r.get('qps'))} | "
              f"{num(r.get('p50_ms'), 3)} | {num(r.get('p99_ms'), 3)} | "
              f"{num(r.get('p999_ms'), 3)} | {num(r.get('server_cpu_us_per_op'), 1)} | "
              f"{num(r.get('pg_cpu_us_per_op'), 0)} | {baseline} | {num(r.get('ratio_qps'), 2)} | "
              f"{num(r.get('ratio_p99'), 2)} | {r.get('target', '')} | {verdict} |")


if __name__ == "__main__":
    main()
