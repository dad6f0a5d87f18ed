#!/usr/bin/env python3
"""Turn the Opus pcapng captures into test fixtures and fuzz seeds.

    python3 tests/data/opus/extract_pcap.py tests/data/pcaps

writes tests/data/opus/{speech-dtx,tone-stereo}.bin (format in README.md here)
and seeds tests/fuzz/corpus/opus/ with a few real payloads plus hand-made
packets for the code 1/2/3 and padding paths the captures never use.

The captures are pcapng (Section Header, Interface Description and Enhanced
Packet blocks), link type 1 (Ethernet) on loopback, IPv4/UDP with RTP at the
UDP payload. Only the standard library is used.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "fuzz", "corpus", "opus")


def pcapng_packets(path):
    """Yield (timestamp_us, link_type, frame) for every Enhanced Packet Block."""
    data = open(path, "rb").read()
    off = 0
    ifaces = []  # (link_type, ticks per second)
    endian = "<"
    while off + 12 <= len(data):
        btype = struct.unpack_from(endian + "I", data, off)[0]
        if btype == 0x0A0D0D0A:  # byte-order magic decides the endianness
            magic = struct.unpack_from("<I", data, off + 8)[0]
            endian = "<" if magic == 0x1A2B3C4D else ">"
            ifaces = []
        blen = struct.unpack_from(endian + "I", data, off + 4)[0]
        if blen < 12 or off + blen > len(data):
            raise ValueError("truncated block at %d" % off)
        body = data[off + 8:off + blen - 4]
        if btype == 1:  # Interface Description Block
            link, _, _ = struct.unpack_from(endian + "HHI", body, 0)
            tps = 10 ** 6
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack_from(endian + "HH", body, o)
                if code == 0:
                    break
                if code == 9:  # if_tsresol
                    r = body[o + 4]
                    tps = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((link, tps))
        elif btype == 6:  # Enhanced Packet Block
            iid, hi, lo, caplen, _ = struct.unpack_from(endian + "IIIII", body, 0)
            link, tps = ifaces[iid]
            ts = (hi << 32) | lo
            yield ts * 10 ** 6 // tps, link, body[20:20 + caplen]
        off += blen


def udp_payload(link, frame):
    """(dst_port, payload) of an IPv4/UDP frame, or None."""
    if link == 1:  # Ethernet
        if struct.unpack_from(">H", frame, 12)[0] != 0x0800:
            return None
        ip = frame[14:]
    elif link == 113:  # Linux cooked capture
        ip = frame[16:]
    else:
        raise ValueError("link type %d not handled" % link)
    if ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 15) * 4
    _, dport, ulen = struct.unpack_from(">HHH", ip, ihl)
    return dport, ip[ihl + 8:ihl + ulen]


def rtp_split(pkt):
    """(marker, pt, seq, ts, payload) of an RTP packet (RFC 3550 §5.1)."""
    b0, b1 = pkt[0], pkt[1]
    if b0 >> 6 != 2:
        raise ValueError("not RTP v2")
    seq, ts = struct.unpack_from(">HI", pkt, 2)
    off = 12 + 4 * (b0 & 15)
    if b0 & 0x10:  # header extension
        words = struct.unpack_from(">H", pkt, off + 2)[0]
        off += 4 + 4 * words
    end = len(pkt) - (pkt[-1] if b0 & 0x20 else 0)
    return b1 >> 7, b1 & 127, seq, ts, pkt[off:end]


def convert(pcap, out):
    recs = []
    t0 = None
    for t_us, link, frame in pcapng_packets(pcap):
        u = udp_payload(link, frame)
        if u is None:
            continue
        marker, pt, seq, ts, payload = rtp_split(u[1])
        t0 = t_us if t0 is None else t0
        recs.append((marker, pt, seq, ts, t_us - t0, payload))
    with open(out, "wb") as f:
        for marker, pt, seq, ts, arr, payload in recs:
            f.write(struct.pack(">HHIIBBH", len(payload), seq, ts, arr,
                                marker, pt, 0))
            f.write(payload)
    return recs


def seed(name, data):
    with open(os.path.join(CORPUS, name), "wb") as f:
        f.write(bytes(data))


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "tests/data/pcaps"
    os.makedirs(CORPUS, exist_ok=True)
    speech = convert(os.path.join(src, "gst-opus-speech-dtx.pcap"),
                     os.path.join(HERE, "speech-dtx.bin"))
    tone = convert(os.path.join(src, "gst-opus-tone-stereo.pcap"),
                   os.path.join(HERE, "tone-stereo.bin"))
    print("speech-dtx: %d packets, tone-stereo: %d packets"
          % (len(speech), len(tone)))
    # Real payloads: the first packets (encoder start-up), a quiet one, the
    # largest and smallest, and the packets sent around DTX (marker set).
    for name, recs in (("speech", speech), ("tone", tone)):
        sizes = [len(r[5]) for r in recs]
        picks = {0, 1, 2, len(recs) // 2, sizes.index(max(sizes)),
                 sizes.index(min(sizes)), len(recs) - 1}
        picks |= {i for i, r in enumerate(recs) if r[0]}
        for i in sorted(picks):
            seed("%s-%03d" % (name, i), recs[i][5])
    # Hand-made packets: every code, CBR/VBR, padding, DTX, and bad lengths.
    body = speech[len(speech) // 2][5][1:]
    seed("dtx-toc-only", [0x78])
    seed("code1-cbr", [0x79] + list(body[:20]) * 2)
    seed("code2-vbr", [0x7A, 7] + list(body[:7]) + list(body[:12]))
    seed("code2-two-byte-len", [0xFA, 0xFC, 0x00] + [0] * 252)
    seed("code3-cbr-3", [0x7B, 0x03] + list(body[:10]) * 3)
    seed("code3-vbr-pad", [0x7B, 0xC2, 0x02, 5] + list(body[:5]) +
         list(body[:9]) + [0, 0])
    seed("code3-pad-255", [0x7B, 0x41, 0xFF, 0x00] + [0] * 254)
    seed("code3-bad-count0", [0x7B, 0x00])
    seed("code3-bad-vbr-len", [0x7B, 0x82, 200, 1, 2, 3])
    seed("celt-2.5ms-48", [0x83, 48] + [0x55] * 48)


if __name__ == "__main__":
    main()
