#!/usr/bin/env bash
# Installs what the build and the tests need on Debian 12, then builds libsrtp
# 2.5.0 from Debian's own source package with its OpenSSL crypto backend into
# a local prefix (Debian's binary libsrtp2 uses NSS, which is several times
# slower per packet). Idempotent: a second run checks and returns in seconds.
#
#   scripts/deps.sh            build + run dependencies
#   scripts/deps.sh --test     also what the test suite drives (aiortc,
#                              chromium, fuzzing runtime, the OpenAPI
#                              validator: tests/node/ from the npm registry)
#
# Environment: SFU_DEPS_PREFIX (default: <repo>/.deps) holds the libsrtp build.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${SFU_DEPS_PREFIX:-$here/.deps}
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libuv1-dev libnice-dev libglib2.0-dev libssl-dev libopus-dev
      libjansson-dev libjwt-dev libh2o-dev libwslay-dev libpcap-dev
      libcmocka-dev zlib1g-dev libyaml-dev dpkg-dev curl ca-certificates)
if [ "$want_test" = 1 ]; then
  pkgs+=(python3 python3-aiortc python3-numpy python3-websockets chromium procps iproute2 iptables
         libnss3-tools coturn etcd-server python3-yaml python3-jsonschema
         simple-whip-client gstreamer1.0-plugins-base gstreamer1.0-plugins-good
         gstreamer1.0-plugins-bad gstreamer1.0-nice
         adduser openssl systemd)  # integration.package: the postinst's, a TLS pair, unit check
  # Node.js and npm for tests/node/ (a machine may have its own Node.js)
  command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
    || missing+=("$p")
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

updated=0
apt_update() {
  [ "$updated" = 1 ] && return 0
  as_root apt-get update -qq >/dev/null
  updated=1
}

if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  apt_update
  log=$(mktemp)
  if ! DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q \
       --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "deps: apt-get install failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

# --- tests/node: the OpenAPI validator (npm, locked) -------------------------
# Installed into tests/node/node_modules (not committed); again whenever
# package-lock.json changes.
if [ "$want_test" = 1 ] && ! cmp -s "$here/tests/node/package-lock.json" \
     "$here/tests/node/node_modules/.sfu-lock"; then
  echo "deps: npm ci in tests/node"
  (cd "$here/tests/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$here/tests/node/package-lock.json" "$here/tests/node/node_modules/.sfu-lock"
fi

# --- libsrtp2 with OpenSSL ---------------------------------------------------
# With the project's stream list (scripts/srtp_stream_list.c) in place of
# libsrtp's own: the stamp names both, so a prefix built without it is
# rebuilt.
stamp=$prefix/.libsrtp-openssl-2.5.0-streamlist1
if [ -f "$stamp" ] && [ -f "$prefix/lib/libsrtp2.a" ]; then
  exit 0
fi

# apt-get source needs a deb-src entry for the configured suites.
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deps: adding deb-src entries for bookworm"
  as_root tee /etc/apt/sources.list.d/sfu-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  updated=0
fi
apt_update

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -qq libsrtp2 >/dev/null 2>&1)
src=$(find "$work" -maxdepth 1 -type d -name 'libsrtp2-*' | head -1)
[ -n "$src" ] || { echo "deps: apt-get source libsrtp2 failed" >&2; exit 1; }
echo "deps: building $(basename "$src") with --enable-openssl into $prefix"
cp "$here/scripts/srtp_stream_list.c" "$src/srtp/stream_list.c"
(cd "$src" && ./configure -q --prefix="$prefix" --enable-openssl \
   CFLAGS="-O2 -fPIC -DSRTP_NO_STREAM_LIST" >/dev/null \
   && make -s -j"$(nproc)" libsrtp2.a srtpobj="srtp/srtp.o srtp/stream_list.o" >/dev/null \
   && make -s install >/dev/null)
touch "$stamp"
echo "deps: libsrtp2 (OpenSSL) ready in $prefix"
