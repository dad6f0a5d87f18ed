#!/usr/bin/env python3
"""Room process cost: spawn latency and idle private memory.

Starts a local sfud, creates N rooms one after another (each deleted before
the next, so every spawn sees the same node), and prints:

* spawn latency, as sfud measures it: uv_spawn -> the room's "ready"
  message (fork + exec + dynamic linking + loop/IPC setup), median,
  p90, max over N;
* the API view: POST /v1/rooms round trip (the process exists on return);
* private memory of an idle room (Private_Clean + Private_Dirty from
  /proc/PID/smaps_rollup), and its RSS and PSS, median over 20 idle rooms
  that run side by side.

Prints figures; asserts nothing.

  bench/room_spawn.py --build build [--count 100]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
from sfutest import Sfud, smaps, wait_for  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--idle", type=int, default=20)
    a = ap.parse_args()
    s = Sfud(os.path.join(a.build, "sfud"), os.path.join(a.build, "sfu-room"),
             "--heartbeat-ms", "1000",
             "--heartbeat-timeout-ms", "5000")
    try:
        spawn_ms, api_ms = [], []
        for _ in range(a.count):
            t0 = time.perf_counter()
            st, r = s.request("POST", "/v1/rooms", {})
            api_ms.append((time.perf_counter() - t0) * 1e3)
            assert st == 201, r
            rid = r["room_id"]
            j = wait_for(lambda: (lambda x: x if "spawn_ms" in x else None)(
                s.request("GET", "/v1/rooms/" + rid)[1]), step=0.002)
            spawn_ms.append(j["spawn_ms"])
            s.request("DELETE", "/v1/rooms/" + rid)
            wait_for(lambda: s.request("GET", "/v1/rooms/" + rid)[0] == 404,
                     step=0.002)

        rooms = [s.request("POST", "/v1/rooms", {})[1] for _ in range(a.idle)]
        for r in rooms:
            wait_for(lambda: s.request("GET", "/v1/rooms/" + r["room_id"])[1]
                     ["state"] == "running")
        time.sleep(2.5)  # a few heartbeats: steady idle state
        priv, rss, pss = [], [], []
        for r in rooms:
            m = smaps(r["pid"])
            priv.append(m["Private_Clean"] + m["Private_Dirty"])
            rss.append(m["Rss"])
            pss.append(m["Pss"])
        sfud_m = smaps(s.proc.pid)
    finally:
        s.stop()

    print(f"room spawn -> ready over {a.count} spawns (ms): "
          f"median {statistics.median(spawn_ms):.2f}  p90 {pct(spawn_ms, 90):.2f}  "
          f"min {min(spawn_ms):.2f}  max {max(spawn_ms):.2f}")
    print(f"POST /v1/rooms round trip (ms): median {statistics.median(api_ms):.2f}  "
          f"p90 {pct(api_ms, 90):.2f}")
    print(f"idle room, median of {a.idle} (KiB): private {statistics.median(priv)}  "
          f"(max {max(priv)})  pss {statistics.median(pss)}  rss {statistics.median(rss)}")
    print(f"sfud after the run (KiB): private "
          f"{sfud_m['Private_Clean'] + sfud_m['Private_Dirty']}  rss {sfud_m['Rss']}")


if __name__ == "__main__":
    main()
