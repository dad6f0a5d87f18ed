#!/usr/bin/env python3
"""Load through sfu-replay: the standard scenarios, the SFU's cost.

Starts a local sfud (heartbeat 200 ms), measures an idle room's private
memory, then drives each scenario of bench/scenarios/ with sfu-replay (real
clients: WebSocket, ICE, DTLS, SRTP; one process, one thread):

  a  room10        a 10-person room, everyone speaking (a looped Opus capture)
  b  listeners200  5 speakers and 200 listeners in one room
  c  rooms50       50 rooms of 6: 2 speakers and 4 listeners each

Over a window in the middle of the sending phase (it starts once the rooms
forward, plus 3 s) it prints, per scenario:

* forwarded packets/s (the rooms' rtp_out counters);
* SFU CPU µs per forwarded packet: sfud (/proc) plus every room process
  (each room's own getrusage, sent with the same stats message as its
  counters, so CPU and packets are aligned), and as % of one core;
* the load generator's CPU over the same window (/proc of sfu-replay);
* added latency p50/p99 and loss, from sfu-replay's summary (whole run);
* room memory per participant: private ((rooms' private - idle room x
  rooms) / participants) and RSS (rooms' RSS / participants, shared library
  pages counted once per room), from smaps_rollup at the end of the window;
* what the rest of the machine used meanwhile (should be near 0);
* the ratio to the floor measured first in the same run (sfu-floor,
  bench/floor.c: one SRTP protect + its share of one sendmmsg per
  forwarded copy, one recvmmsg share + one unprotect per received packet):
  SFU CPU / (forwarded x per-copy floor + received x per-received floor).

Prints figures; asserts nothing.

  bench/replay_load.py --build build [--only a,b,c] [--seconds 15]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, HERE)
from sfutest import Sfud, smaps, wait_for  # noqa: E402
from call_cpu import machine_busy_us, proc_cpu_us  # noqa: E402

SCENARIOS = {"a": "room10", "b": "listeners200", "c": "rooms50"}


def rooms_of(sfud, prefix):
    st, j = sfud.request("GET", "/v1/rooms")
    return [r for r in j["rooms"] if (r.get("name") or "").startswith(prefix)
            and r["state"] == "running"]


def room_stats(sfud, rooms):
    """{room_id: (cpu_us, rtp_out, uptime_ms, rtp_in)} from each room's last stats."""
    out = {}
    for r in rooms:
        st, j = sfud.request("GET", "/v1/rooms/" + r["room_id"])
        s = j.get("stats") or {}
        pk = s.get("packets", {})
        out[r["room_id"]] = (s.get("cpu_us", 0), pk.get("rtp_out", 0), s.get("uptime_ms", 0),
                             pk.get("rtp_in", 0))
    return out


def measure_floor(args):
    """sfu-floor's figures on this machine, now (bench/floor.c)."""
    out = subprocess.run([os.path.join(args.build, "sfu-floor"), "--json"], check=True,
                         capture_output=True, text=True).stdout
    f = json.loads(out)
    print("floor: %.0f ns per forwarded copy (protect %.0f + send %.0f), %.0f ns per received"
          " packet (recv %.0f + unprotect %.0f)" % (f["per_copy_ns"], f["protect_ns"],
                                                     f["send_ns"], f["per_received_ns"],
                                                     f["recv_ns"], f["unprotect_ns"]))
    return f


def generator_policy(args):
    """How the load generator is scheduled (Popen's preexec_fn).

    Its clients stand for machines elsewhere; on loopback, each copy a room
    sends wakes the generator, and under the default policy the woken
    generator preempts the room in the middle of its sendmmsg, once per copy
    (a context switch each way, charged to the room). SCHED_BATCH wakees do
    not preempt: the room finishes its batch, the generator reads it after.
    """
    if args.generator_policy == "normal":
        return None
    return lambda: os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def fresh_stats(sfud, rooms):
    """Stats taken after every room has sent a newer message (heartbeats)."""
    before = room_stats(sfud, rooms)
    def newer():
        now = room_stats(sfud, rooms)
        return now if all(now[k][2] > before[k][2] for k in now) else None
    return wait_for(newer, 5, 0.02, "fresh room stats")


def idle_room_private_kib(sfud):
    st, r = sfud.request("POST", "/v1/rooms", {"name": "bench-idle"})
    wait_for(lambda: sfud.request("GET", "/v1/rooms/bench-idle")[1]["state"] == "running", 5)
    time.sleep(0.5)
    kib = smaps(r["pid"])["Private"]
    sfud.request("DELETE", "/v1/rooms/bench-idle")
    return kib


def run(args, sfud, key, idle_kib, floor):
    name = SCENARIOS[key]
    path = os.path.join(HERE, "scenarios", name + ".json")
    with open(path) as f:
        scen = json.load(f)
    prefix = scen["room"]
    nparts = scen.get("rooms", 1) * sum(p.get("count", 1) for p in scen["participants"])
    out = tempfile.mktemp(prefix="sfu-bench-", suffix=".json")
    replay = subprocess.Popen(
        [os.path.join(args.build, "tools", "sfu-replay"), "--server",
         "http://127.0.0.1:%d" % sfud.port, "--api-key", sfud.api_key, "--scenario", path,
         "--duration", str(args.seconds + 12), "--json", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=generator_policy(args))

    def forwarding():
        rooms = rooms_of(sfud, prefix)
        if len(rooms) < scen.get("rooms", 1):
            return None
        return rooms if sum(v[1] for v in room_stats(sfud, rooms).values()) > 0 else None
    rooms = wait_for(forwarding, 60, 0.2, "rooms forwarding")
    time.sleep(3)
    a = fresh_stats(sfud, rooms)
    a_sfud, a_rep, (a_busy, _) = proc_cpu_us(sfud.proc.pid), proc_cpu_us(replay.pid), \
        machine_busy_us()
    time.sleep(args.seconds)
    b = fresh_stats(sfud, rooms)
    b_sfud, b_rep, (b_busy, _) = proc_cpu_us(sfud.proc.pid), proc_cpu_us(replay.pid), \
        machine_busy_us()
    maps = [smaps(r["pid"]) for r in rooms]
    private = sum(m["Private"] for m in maps)
    rss = sum(m["Rss"] for m in maps)
    _, err = replay.communicate(timeout=120)
    with open(out) as f:
        summary = json.load(f)
    os.unlink(out)

    room_cpu = sum(b[k][0] - a[k][0] for k in b)
    fwd = sum(b[k][1] - a[k][1] for k in b)
    rx = sum(b[k][3] - a[k][3] for k in b)
    secs = sum(b[k][2] - a[k][2] for k in b) / len(b) / 1000.0
    sfud_cpu = b_sfud - a_sfud
    rep_cpu = b_rep - a_rep
    rest = (b_busy - a_busy) - room_cpu - sfud_cpu - rep_cpu
    sfu_cpu = room_cpu + sfud_cpu
    lat = summary["latency_us"] or {}
    print("\n== %s (%s): %d rooms, %d clients, %.1f s window" %
          (key, name, len(rooms), nparts, secs))
    print("  forwarded           %9.0f packets/s" % (fwd / secs))
    if fwd:
        print("  SFU CPU             %9.2f us per forwarded packet (rooms %.2f + sfud %.2f);"
              " %.1f %% of a core" % (sfu_cpu / fwd, room_cpu / fwd, sfud_cpu / fwd,
                                      100.0 * sfu_cpu / (secs * 1e6)))
    if fwd:
        floor_us = (fwd * floor["per_copy_ns"] + rx * floor["per_received_ns"]) / 1000.0
        print("  floor               %9.2f us per forwarded packet (%d received per 100"
              " forwarded): SFU CPU is %.2f x the floor" %
              (floor_us / fwd, round(100.0 * rx / fwd), sfu_cpu / floor_us))
    print("  load generator CPU  %9.1f %% of a core (%.2f us per packet it received)" %
          (100.0 * rep_cpu / (secs * 1e6),
           rep_cpu / max(1, summary["received_per_s"] * secs)))
    print("  added latency       p50 %d us  p99 %d us  max %d us (%d packets)" %
          (lat.get("p50", 0), lat.get("p99", 0), lat.get("max", 0), lat.get("n", 0)))
    print("  loss                %d of %d (%.4f %%); clients connected %d/%d; ok=%s" %
          (summary["lost"], summary["received"] + summary["lost"], 100 * summary["loss"],
           sum(c["connected"] for c in summary["clients"]), nparts, summary["ok"]))
    print("  room memory         %.0f KiB private per participant (%d KiB in %d rooms, idle"
          " room %d KiB); RSS %.0f KiB per participant (shared pages counted in every room)"
          % ((private - idle_kib * len(rooms)) / nparts, private, len(rooms), idle_kib,
             rss / nparts))
    print("  rest of the machine %9.1f %% of a core" % (100.0 * rest / (secs * 1e6)))
    if summary.get("failure"):
        print("  sfu-replay:", summary["failure"])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", default="a,b,c")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--generator-policy", choices=("batch", "normal"), default="batch",
                    help="scheduling policy of sfu-replay (default batch: see generator_policy)")
    args = ap.parse_args()
    sfud = Sfud(os.path.join(args.build, "sfud"), os.path.join(args.build, "sfu-room"),
                "--max-participants", "300",
                "--max-connections-per-ip", "2000")  # every client is on 127.0.0.1
    try:
        floor = measure_floor(args)
        idle = idle_room_private_kib(sfud)
        for key in args.only.split(","):
            run(args, sfud, key.strip(), idle, floor)
        measure_floor(args)  # again: how much the machine moved during the run
    finally:
        sfud.kill()


if __name__ == "__main__":
    main()
