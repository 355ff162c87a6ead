#!/usr/bin/env python3
"""bench/compare.py: which ratios moved by more than the limit from one run to the next."""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bench"))
import compare  # noqa: E402


def run(started, ratios):
    rows = [{"operation": "echo", "in_flight": 16, "ran": True}]  # no ratio: not compared
    for (op, n), ratio in ratios.items():
        rows.append({"operation": op, "in_flight": n, "ran": True, "ratio_qps": ratio})
    rows.append({"operation": "AddMultiCloudImage", "in_flight": 8, "ran": False})
    return {"started": started, "rows": rows}


class CompareTest(unittest.TestCase):
    def compare(self, *runs, args=()):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, r in enumerate(runs):
                paths.append(os.path.join(d, f"{i}.json"))
                with open(paths[-1], "w", encoding="utf-8") as f:
                    json.dump(r, f)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = compare.main(list(args) + paths)
            return rc, out.getvalue()

    def test_counts_the_rows_within_the_limit_pair_by_pair(self):
        a = run("A", {("ResolveImage HEAD", 16): 1.00, ("Clone", 8): 0.60})
        b = run("B", {("ResolveImage HEAD", 16): 1.15, ("Clone", 8): 0.50})
        c = run("C", {("ResolveImage HEAD", 16): 1.10, ("Clone", 8): 0.52})
        rc, out = self.compare(a, b, c)
        self.assertEqual(rc, 1)
        # +15% is within; 0.60 -> 0.50 is -17%.
        self.assertIn("A -> B: 1 of 2 ratios within ±15% (outside: Clone @8)", out)
        self.assertIn("B -> C: 2 of 2 ratios within ±15%", out)
        self.assertIn("| Clone | 8 | 0.60 | 0.50 | 0.52 | -17% !, +4% | 20% |", out)

    def test_all_within_exits_0_and_the_limit_is_an_option(self):
        a = run("A", {("ResolveImage HEAD", 16): 1.00})
        b = run("B", {("ResolveImage HEAD", 16): 1.08})
        self.assertEqual(self.compare(a, b)[0], 0)
        rc, out = self.compare(a, b, args=("--limit", "0.05"))
        self.assertEqual(rc, 1)
        self.assertIn("0 of 1 ratios within ±5%", out)

    def test_rows_missing_from_a_run_are_named_not_compared(self):
        a = run("A", {("ResolveImage HEAD", 16): 1.00, ("ResolveLaunch", 16): 0.9})
        b = run("B", {("ResolveImage HEAD", 16): 1.00})
        rc, out = self.compare(a, b)
        self.assertEqual(rc, 0)
        self.assertIn("1 of 1 ratios", out)
        self.assertIn("not in every run: ResolveLaunch @16", out)


if __name__ == "__main__":
    unittest.main()
