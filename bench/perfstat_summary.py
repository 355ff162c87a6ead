#!/usr/bin/env python3
"""Sums up BENCH_OUTSIDE_PERFSTAT=1's files: per outside row and client, the medians over its
slices of the services' calls/s, CPU, context switches and socket/poll syscalls per call.

  bench/perfstat_summary.py [bench/results]
"""
import collections
import glob
import re
import sys

EVENTS = ("task-clock", "context-switches", "syscalls:sys_enter_recvmsg",
          "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_epoll_wait")
FUTEX = "syscalls:sys_enter_futex"


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    for path in sorted(glob.glob(directory + "/perfstat-*.txt")):
        blocks, cur = [], {}
        for line in open(path, encoding="utf-8"):
            line = line.strip()
            m = re.match(r"## (\w+) client: (\d+) calls/s", line)
            if m:
                cur["client"], cur["qps"] = m.group(1), float(m.group(2))
                blocks.append(cur)
                cur = {}
            elif "," in line and not line.startswith("#"):
                p = line.split(",")
                try:
                    cur[p[2]] = float(p[0])
                    cur["seconds"] = float(p[3]) / 1e9
                except (ValueError, IndexError):
                    continue
        per = collections.defaultdict(lambda: collections.defaultdict(list))
        for b in blocks:
            if b["qps"] <= 0 or not all(e in b for e in EVENTS):
                continue
            calls = b["qps"] * b["seconds"]
            for e in EVENTS + (FUTEX,):
                if e in b:  # futex: only in files written since it was added
                    per[b["client"]][e].append(b[e] / calls * (1000 if e == "task-clock" else 1))
            per[b["client"]]["qps"].append(b["qps"])
        name = path.split("perfstat-")[1][:-len(".txt")]
        for client, d in per.items():
            def med(v):
                return sorted(v)[len(v) // 2]
            print(f"{name:28} {client:8} {med(d['qps']):7.0f} calls/s  CPU "
                  f"{med(d['task-clock']):5.1f} us/call  switches {med(d['context-switches']):.2f}"
                  f"  recvmsg {med(d[EVENTS[2]]):.2f}  sendmsg {med(d[EVENTS[3]]):.2f}"
                  f"  epoll_wait {med(d[EVENTS[4]]):.2f}"
                  + (f"  futex {med(d[FUTEX]):.2f}" if d[FUTEX] else "") + " per call")


if __name__ == "__main__":
    main()
