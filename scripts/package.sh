#!/usr/bin/env bash
# Builds the Debian package of sfu from the tree:
#   scripts/package.sh [BUILD_DIR [OUT_DIR]]
# BUILD_DIR (default build/) gives the binaries: brought up to date, or,
# when it is not configured yet, set up as scripts/run.sh does (deps.sh,
# then build.sh). The .deb is written to OUT_DIR (default BUILD_DIR) and its
# path printed last.
#
# The package is staged as a tree and made with dpkg-deb: sfud, sfu-replay
# (and sfuctl when the build has it) in /usr/bin, sfu-room in /usr/lib/sfu,
# the unit, /etc/sfu/sfud.conf written by `sfud --print-config` with the
# packaged paths, the demo page in /usr/share/sfu/web, the docs. libsrtp is
# linked statically (the OpenSSL build of scripts/deps.sh); Depends comes
# from dpkg-shlibdeps over the binaries, plus adduser for postinst.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$here/build}")
out=$(realpath -m "${2:-$build}")

if [ ! -f "$build/CMakeCache.txt" ]; then
  "$here/scripts/deps.sh"
  "$here/scripts/build.sh" "$build"
else
  cmake --build "$build" -j"$(nproc)" --target sfud sfu-room sfu-replay -- --no-print-directory >/dev/null
fi
if grep -q '^SFU_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "package: $build is a sanitizer build; package a normal one" >&2
  exit 1
fi
if [[ "$("$build/sfud" --version)" != *"backend OpenSSL"* ]]; then
  echo "package: $build/sfud does not link the OpenSSL libsrtp (run scripts/deps.sh)" >&2
  exit 1
fi

base=$(sed -n 's/^project(sfu VERSION \([0-9.]*\).*/\1/p' "$here/CMakeLists.txt")
version=$base
if git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
  # grows with every commit of a branch, so an upgrade is seen as one
  version="$base+$(git -C "$here" rev-list --count HEAD).g$(git -C "$here" rev-parse --short=8 HEAD)"
fi
arch=$(dpkg --print-architecture)

stage=$(mktemp -d "$build/package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/sfu" "$root/etc/sfu" \
           "$root/lib/systemd/system" "$root/usr/share/sfu/web" "$root/usr/share/doc/sfu"

bins=("$build/sfud:usr/bin/sfud" "$build/sfu-room:usr/lib/sfu/sfu-room"
      "$build/tools/sfu-replay:usr/bin/sfu-replay")
sfuctl=$(find "$build" -maxdepth 3 -name sfuctl -type f -perm -u+x | head -1)
[ -n "$sfuctl" ] && bins+=("$sfuctl:usr/bin/sfuctl")
for b in "${bins[@]}"; do
  install -m 755 "${b%%:*}" "$root/${b#*:}"
  strip --strip-unneeded "$root/${b#*:}"
done

# The configuration: every setting with its help, the packaged paths set.
{
  cat <<'HEAD'
# /etc/sfu/sfud.conf -- read by sfud.service (sfud --config /etc/sfu/sfud.conf).
# Before a first start, set at least rtc_addresses (the IPs clients send
# media to), and tls_cert_file/tls_key_file or a TLS proxy in front
# (/usr/share/doc/sfu/deploying.md). api_key and token_secret are in
# /etc/sfu/sfud.env, made at installation. Then:
#   sudo -u sfu sh -c 'set -a; . /etc/sfu/sfud.env; sfud --config /etc/sfu/sfud.conf --check-config'
#   systemctl enable --now sfud
#
HEAD
  "$build/sfud" --print-config --listen-host 0.0.0.0 --data-dir /var/lib/sfu \
      --web-root /usr/share/sfu/web --room-binary /usr/lib/sfu/sfu-room
} >"$root/etc/sfu/sfud.conf"
chmod 644 "$root/etc/sfu/sfud.conf"

install -m 644 "$here/packaging/sfud.service" "$root/lib/systemd/system/sfud.service"
install -m 644 "$here"/web/*.html "$here"/web/*.js "$here"/web/*.css "$root/usr/share/sfu/web/"
for d in README.md docs/{deploying,api,limits,tokens,signaling,events,webhooks,fleet,e2ee,replay,architecture}.md; do
  install -m 644 "$here/$d" "$root/usr/share/doc/sfu/"
done
install -m 755 "$here"/packaging/debian/{postinst,prerm,postrm} "$root/DEBIAN/"
echo /etc/sfu/sfud.conf >"$root/DEBIAN/conffiles"

# Depends: the packages of the shared libraries the binaries link.
mkdir -p "$stage/debian"
printf 'Source: sfu\n\nPackage: sfu\nArchitecture: any\n' >"$stage/debian/control"
shlibs=$(cd "$stage" && dpkg-shlibdeps -O -e"$root/usr/bin/sfud" -e"$root/usr/lib/sfu/sfu-room" \
           -e"$root/usr/bin/sfu-replay" ${sfuctl:+-e"$root/usr/bin/sfuctl"} 2>/dev/null |
         sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CTRL
Package: sfu
Version: $version
Architecture: $arch
Maintainer: sfu maintainers <sfu@localhost>
Installed-Size: $size
Depends: adduser, $shlibs
Section: net
Priority: optional
Description: voice/video selective forwarding unit
 sfud, a node daemon driven over HTTP by a control plane, runs each call
 in its own sfu-room process; clients join with a token over a WebSocket
 and speak WebRTC (ICE-lite, DTLS-SRTP). Also sfu-replay, which replays
 captures through real calls. The systemd unit sfud.service is installed
 but not enabled.
CTRL

mkdir -p "$out"
deb=$out/sfu_${version}_$arch.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
