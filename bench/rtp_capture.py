#!/usr/bin/env python3
"""Kernel-timestamped RTP packets to and from a server on one interface:
the forwarding latency of bench/call_cpu.py (on lo) and of
bench/janus_compare.py (on the server's veth end).

capture() runs this file as a helper process (a packet socket needs root;
in a network namespace, it runs under the namespace's `ip netns exec`
prefix) for a number of seconds and returns what it saw: per RTP packet
to or from the server, (ns, dir, port, ssrc, ts):

* ns: the kernel's timestamp (SO_TIMESTAMPNS) of the packet as it reaches
  the interface or leaves through it;
* dir: 'i' (to the server) or 'o' (from it);
* port: the destination port (to the server: the server's; from it: the
  peer's);
* ssrc, ts: the RTP header's (SRTP leaves it in the clear).

The server is an IPv4 address (any port of it), a set of UDP ports (on
any address), or both. STUN, DTLS and RTCP are left out. On lo every
packet shows twice, as sent and as received: sent_only keeps the first,
so that both directions are timestamped at the same point (when the
sender's sendmsg hands the packet to lo).

The helper prints 'ready' once its socket is bound, then, when the time
is up, one line per packet: 'ns dir port ssrc ts'.

  bench/rtp_capture.py DEV SECONDS [--address A] [--ports P,Q,...] [--sent-only]
"""
import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import time

SO_TIMESTAMPNS = 35
ETH_P_ALL = 0x0003


def run(dev, seconds, address=None, ports=None, sent_only=False):
    """The helper: print 'ns dir port ssrc ts' for every RTP packet to or
    from the server on `dev` for `seconds`."""
    # ETH_P_ALL: a socket bound to one protocol does not see what is sent
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, 0))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.settimeout(0.2)
    server = socket.inet_aton(address) if address is not None else None
    out = []
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frame, anc, _, addr = s.recvmsg(2048, 64)
        except socket.timeout:
            continue
        if sent_only and addr[2] != socket.PACKET_OUTGOING:
            continue
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
            continue                                   # not IPv4, or too short for RTP
        ip = frame[14:]
        if ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        rtp = ip[ihl + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or 192 <= rtp[1] <= 223:
            continue                                   # not RTP (STUN, DTLS, RTCP)
        sport, dport = struct.unpack_from("!HH", ip, ihl)
        if (server is None or ip[16:20] == server) and (ports is None or dport in ports):
            d = "i"
        elif (server is None or ip[12:16] == server) and (ports is None or sport in ports):
            d = "o"
        else:
            continue
        ns = None
        for level, typ, val in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", val[:16])
                ns = sec * 1_000_000_000 + nsec
        if ns is not None:
            _, _, _, ts, ssrc = struct.unpack_from("!BBHII", rtp)
            out.append(f"{ns} {d} {dport} {ssrc} {ts}")
    sys.stdout.write("\n".join(out) + "\n")


async def capture(dev, seconds, address=None, ports=None, sent_only=False, prefix=()):
    """[(ns, dir, port, ssrc, ts)] of the RTP packets to or from the server
    on `dev` over the next `seconds` (see the top of the file), seen by the
    helper started under `prefix` (a command that execs it, such as a
    namespace's `ip netns exec`); None if the helper did not start."""
    cmd = [*prefix, sys.executable, os.path.abspath(__file__), dev, str(seconds)]
    if address is not None:
        cmd += ["--address", address]
    if ports is not None:
        cmd += ["--ports", ",".join(map(str, sorted(ports)))]
    if sent_only:
        cmd.append("--sent-only")
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 10)
        if first.strip() != b"ready":
            return None
        out = await asyncio.wait_for(proc.stdout.read(), seconds + 30)
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
    records = []
    for line in out.decode().splitlines():
        bits = line.split()
        if len(bits) == 5:
            records.append((int(bits[0]), bits[1], int(bits[2]), int(bits[3]), int(bits[4])))
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dev")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--address", help="the server's IPv4 address")
    ap.add_argument("--ports", help="the server's UDP ports, comma-separated")
    ap.add_argument("--sent-only", action="store_true",
                    help="only packets as sent (lo shows each twice)")
    a = ap.parse_args()
    ports = {int(p) for p in a.ports.split(",")} if a.ports else None
    run(a.dev, a.seconds, a.address, ports, a.sent_only)


if __name__ == "__main__":
    main()
