#!/usr/bin/env python3
"""Fails when an #include crosses an edge the architecture forbids.

The tree is the architecture (docs/architecture.md, section 4): each folder
is a layer and includes point down only. This check reads every C file of
the product (sfu/, codecs/, signaling/) and of the client stack (tools/)
and reports

  * a quoted include of another layer that the layer may not use;
  * a system include a layer must not have (GLib and libnice outside the
    client stack; libuv, sockets or a clock inside a sans-IO file);
  * a clock read, a socket or loop call, or a global inside a sans-IO file:
    the call engine and the ICE-lite state machine.

Usage: check_layers.py [ROOT]   (exit 0 = clean, 1 = violations listed)
"""
import os
import re
import sys

# layer -> the layers its files may include (itself always).
ALLOWED = {
    "sfu/base": set(),
    "codecs": {"sfu/base"},
    "signaling": {"sfu/base"},
    "sfu/media": {"sfu/base", "codecs"},
    "sfu/net": {"sfu/base", "sfu/media", "signaling"},
    "sfu/room": {"sfu/base", "sfu/media", "sfu/net", "codecs", "signaling"},
    "sfu/node": {"sfu/base", "signaling"},
    "tools": {"sfu/base", "sfu/media", "sfu/net", "codecs", "signaling"},
}
LAYERS = sorted(ALLOWED, key=len, reverse=True)

# System headers only the client stack (tools/) may include.
GLIB = re.compile(r"^(glib|gio/|glib-object|agent\.h|nice/)")
# Sans-IO files: policy only, fed with time and bytes by their shell (the
# call engine by the room shell; the ICE-lite state machine by icelite.c).
ENGINE_FILES = {
    "sfu/net/icestate.c", "sfu/net/icestate.h", "sfu/net/tcpframe.c", "sfu/net/tcpframe.h",
    "sfu/room/engine.c", "sfu/room/engine.h", "sfu/room/negotiation.c",
    "sfu/room/forwarder.c", "sfu/room/loudest.c", "sfu/room/proto.c", "sfu/room/participant.h",
    "sfu/room/usage.c", "sfu/room/usage.h",
}
ENGINE_SYS = re.compile(r"^(uv\.h|sys/socket\.h|netinet/|arpa/|sys/epoll\.h|time\.h|sys/time\.h)")
ENGINE_CALLS = re.compile(
    r"\b(sfu_now_ms|sfu_now_us|sfu_wall_ms|clock_gettime|gettimeofday|time\s*\(|"
    r"uv_\w+|sendmsg|sendmmsg|recvmsg|recvmmsg|sendto|recvfrom)\s*\(")
# A file-scope object that is not const: a global (static or not).
GLOBAL = re.compile(r"^(?!.*\bconst\b)(?!typedef\b)(?!extern\b)"
                    r"[A-Za-z_][\w\s\*]*\b\w+\s*(\[[^\]]*\])*\s*(=[^;]*)?;\s*(/\*.*)?$")

INC = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]')


def layer_of(path):
    for layer in LAYERS:
        if path == layer or path.startswith(layer + "/"):
            return layer
    return None


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def check_file(root, rel, errors):
    layer = layer_of(rel)
    if layer is None:
        return
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        text = f.read()
    engine = rel in ENGINE_FILES
    for n, line in enumerate(text.splitlines(), 1):
        m = INC.match(line)
        if not m:
            continue
        kind, target = m.groups()
        if kind == '"':
            tl = layer_of(target)
            if tl is None:
                if target.endswith(".h") and "/" in target:
                    errors.append(f"{rel}:{n}: includes {target}, which is in no layer")
                continue
            if tl != layer and tl not in ALLOWED[layer]:
                errors.append(f"{rel}:{n}: {layer} may not include {target} ({tl})")
        else:
            if layer != "tools" and GLIB.match(target):
                errors.append(f"{rel}:{n}: <{target}>: GLib/libnice belong to tools/client only")
            if engine and ENGINE_SYS.match(target):
                errors.append(f"{rel}:{n}: <{target}>: sans-IO: no I/O, no clock read")
    if not engine:
        return
    depth = 0
    for n, line in enumerate(strip_comments(text).splitlines(), 1):
        m = ENGINE_CALLS.search(line)
        if m:
            errors.append(f"{rel}:{n}: {m.group(1)}(): sans-IO: no I/O, no clock read")
        if depth == 0 and not line.startswith((" ", "\t", "#", "}")) and GLOBAL.match(line) \
                and "(" not in line:
            errors.append(f"{rel}:{n}: a global in a sans-IO file: {line.strip()}")
        depth += line.count("{") - line.count("}")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), "..", ".."))
    errors, files = [], 0
    for top in ("sfu", "codecs", "signaling", "tools"):
        for d, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    files += 1
                    check_file(root, os.path.relpath(os.path.join(d, name), root), errors)
    for e in errors:
        print(e)
    print(f"check_layers: {files} files, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
