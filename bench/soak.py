#!/usr/bin/env python3
"""The soak-and-faults test (tests/integration/test_soak.py) for longer:
the same run, 10 minutes by default.

Usage: bench/soak.py --build build [--minutes M] [--seed N] [--rooms R]
"""
import argparse
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import test_soak  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a, rest = ap.parse_known_args()
    b = os.path.abspath(a.build)
    args = ["--sfud", os.path.join(b, "sfud"), "--room", os.path.join(b, "sfu-room"),
            "--replay", os.path.join(b, "tools", "sfu-replay")]
    sys.exit(test_soak.main(args + rest, minutes=10.0))
