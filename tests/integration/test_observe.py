#!/usr/bin/env python3
"""What an operator watches, against a real node and a real call.

A real sfud, and a short sfu-replay call through it (a room, three
participants, real media), then:

* docs/grafana/sfu-node.json: every PromQL expression of the dashboard is
  read (metric names, label matchers, `by (...)` labels) and each metric
  must be a series of the live node's /metrics, each label one of its
  series carries; the packets the call forwarded show in
  sfu_packets_forwarded_total.
* bench/plot.py on the call's sfu-replay summary: two well-formed SVG
  files, a latency histogram with one bar or more and a loss curve with a
  point per interval of the summary.

Usage: test_observe.py --sfud PATH --room PATH --replay PATH
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sfutest import Sfud, main  # noqa: E402

ARGS = None
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CAPTURE = os.path.join(ROOT, "tests", "data", "pcaps", "membrane-input_vp8.pcap")
SVG = "{http://www.w3.org/2000/svg}"

# PromQL words that are not metric names
PROMQL_WORDS = {"sum", "min", "max", "avg", "count", "rate", "irate", "increase", "deriv",
                "histogram_quantile", "by", "without", "on", "ignoring", "group_left",
                "group_right", "and", "or", "unless", "offset", "bool", "label_values",
                "topk", "bottomk", "abs", "clamp_min", "clamp_max", "delta", "idelta"}


def series(metrics_text):
    """{metric name: set of label names} of a Prometheus text exposition."""
    out = {}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if not m:
            raise AssertionError("bad exposition line: %r" % line)
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        out.setdefault(m.group(1), set()).update(labels)
    return out


def parse_promql(expr):
    """(metric names, {metric: label names matched}, labels of by/without
    clauses) of one expression; raises on unbalanced brackets."""
    depth = {"(": 0, "{": 0, "[": 0}
    close = {")": "(", "}": "{", "]": "["}
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings out
    for ch in text:
        if ch in depth:
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            if depth[close[ch]] < 0:
                raise AssertionError("unbalanced %r in %s" % (ch, expr))
    if any(depth.values()):
        raise AssertionError("unbalanced brackets in %s" % expr)
    grouping = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", text):
        grouping.update(x.strip() for x in m.group(1).split(",") if x.strip())
    text_nogroup = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", text)
    text_nogroup = re.sub(r"\[[^\]]*\]", "", text_nogroup)  # range durations: [5m]
    matched = {}
    names = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", text_nogroup):
        name, sel = m.group(1), m.group(2)
        end = m.end()
        if name in PROMQL_WORDS or text_nogroup[end:end + 1] == "(":
            continue
        if re.fullmatch(r"[0-9.e]+|__rate_interval|instance", name):
            continue
        if text_nogroup[max(0, m.start() - 1):m.start()] == "$":  # $instance, $__rate_interval
            continue
        names.append(name)
        if sel:
            matched[name] = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)", sel))
    return names, matched, grouping


def dashboard_exprs(dash):
    """Every PromQL expression of a dashboard: panel targets (rows'
    panels too) and query variables."""
    exprs = []

    def panels(ps):
        for p in ps:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((p.get("title", "?"), t["expr"]))
            panels(p.get("panels", []))
    panels(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.*),\s*\w+\)$", q or "")
        if v.get("type") == "query" and m:
            exprs.append(("variable " + v["name"], m.group(1)))
    return exprs


class Observe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sfu-observe-")
        cls.sfud = Sfud(ARGS.sfud, ARGS.room)
        cls.summary_path = os.path.join(cls.dir, "call.json")
        r = subprocess.run([ARGS.replay, "-s", "http://127.0.0.1:%d" % cls.sfud.port, "-k",
                            cls.sfud.api_key, "-n", "3", "--room", "observe", "--loop", "0",
                            "--duration", "3", "--json", cls.summary_path, CAPTURE],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           timeout=60)
        cls.replay_rc, cls.replay_err = r.returncode, r.stderr
        # a room that stays (with a participant's token), so the room series exist
        st, room = cls.sfud.request("POST", "/v1/rooms", {"name": "observe-idle"})
        assert st == 201, room
        cls.sfud.request("POST", "/v1/rooms/observe-idle/tokens", {"identity": "watcher"})
        _, cls.metrics = cls.sfud.request("GET", "/metrics", auth=False)

    @classmethod
    def tearDownClass(cls):
        import shutil
        cls.sfud.stop_and_check()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_replay_call_ran(self):
        self.assertEqual(self.replay_rc, 0, self.replay_err[-2000:])

    def test_every_dashboard_metric_is_served(self):
        with open(os.path.join(ROOT, "docs", "grafana", "sfu-node.json")) as f:
            dash = json.load(f)
        live = series(self.metrics)
        exprs = dashboard_exprs(dash)
        self.assertGreater(len(exprs), 20)
        used = set()
        for where, expr in exprs:
            names, matched, grouping = parse_promql(expr)
            self.assertTrue(names, "%s: no metric in %s" % (where, expr))
            for n in names:
                self.assertIn(n, live, "%s: %s is not served by /metrics" % (where, n))
                used.add(n)
            for n, labels in matched.items():
                # instance and job are what Prometheus adds when it scrapes
                self.assertLessEqual(labels - {"instance", "job"}, live[n],
                                     "%s: labels of %s" % (where, n))
            carried = set().union(*(live[n] for n in names)) | {"instance", "job"}
            self.assertLessEqual(grouping, carried, "%s: by/without labels" % where)
        # what the dashboard must show (docs/deploying.md, "Observe")
        for n in ("sfu_rooms", "sfu_participants", "sfu_packets_forwarded_total",
                  "sfu_packets_dropped_total", "sfu_journal_backlog_records",
                  "sfu_room_spawn_seconds_bucket", "sfu_http_requests_total",
                  "sfu_http_server_errors_total", "sfu_room_crashes_total"):
            self.assertIn(n, used)
        self.assertIn("reason", live["sfu_packets_dropped_total"])

    def test_the_call_shows_in_the_packet_counters(self):
        m = re.search(r"^sfu_packets_forwarded_total (\d+)$", self.metrics, re.M)
        with open(self.summary_path) as f:
            summary = json.load(f)
        # every copy the clients received was forwarded by the room
        self.assertGreaterEqual(int(m.group(1)), summary["received"])
        self.assertGreater(summary["received"], 0)
        m = re.search(r"^sfu_journal_backlog_records (\d+)$", self.metrics, re.M)
        self.assertGreater(int(m.group(1)), 0)  # no webhook receiver: nothing acknowledged

    def test_plots_of_the_summary(self):
        with open(self.summary_path) as f:
            summary = json.load(f)
        self.assertTrue(summary["latency_histogram"]["buckets_us"])
        self.assertEqual(sum(b[2] for b in summary["latency_histogram"]["buckets_us"]) +
                         summary["latency_histogram"]["over"], summary["latency_us"]["n"])
        self.assertGreaterEqual(len(summary["intervals"]), 3)
        # the seconds add up to the whole
        for k in ("sent", "received", "lost"):
            self.assertEqual(sum(i[k] for i in summary["intervals"]), summary[k], k)
        out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "plot.py"),
                              self.summary_path, "--title", "observe"], check=True,
                             stdout=subprocess.PIPE, text=True, timeout=60).stdout.split()
        self.assertEqual(out, [os.path.join(self.dir, "call-latency.svg"),
                               os.path.join(self.dir, "call-loss.svg")])
        lat = ET.parse(out[0]).getroot()
        self.assertEqual(lat.tag, SVG + "svg")
        bars = [r for r in lat.iter(SVG + "rect") if r.get("fill") == "#4c78a8"]
        self.assertGreater(len(bars), 0)
        loss = ET.parse(out[1]).getroot()
        self.assertEqual(loss.tag, SVG + "svg")
        lines = list(loss.iter(SVG + "polyline"))
        self.assertEqual(len(lines), 2)  # received per second, loss
        self.assertEqual(len(lines[1].get("points").split()), len(summary["intervals"]))
        for el in lat.iter():
            for a in ("x", "y", "width", "height"):
                if el.get(a) is not None:
                    self.assertNotIn("nan", el.get(a).lower())


if __name__ == "__main__":
    main(replay="required")
