#!/usr/bin/env bash
# Runs coturn (Debian's `coturn`, turnserver) as the TURN server of sfud's
# clients: TURN REST API credentials (use-auth-secret: sfud mints them per
# join from the same secret), TURN over UDP and TCP on --port and over TLS
# on --tls-port, relaying only to the SFU's media addresses. Writes its
# config, certificate, secret and log under --dir, prints the matching sfud
# settings, then execs turnserver in the foreground (its PID is this
# script's; Ctrl-C or SIGTERM stops it). docs/deploying.md explains the
# choices.
#
#   scripts/coturn.sh                       development: 127.0.0.1, TLS on 5349
#   scripts/coturn.sh --listen-ip 10.0.0.5 --external-ip 203.0.113.7 \
#       --host turn.example.com --tls-port 443 \
#       --cert /etc/letsencrypt/live/turn.example.com/fullchain.pem \
#       --key /etc/letsencrypt/live/turn.example.com/privkey.pem \
#       --peer 198.51.100.20                production-like
#
# Options:
#   --dir DIR          state: turnserver.conf, secret, cert, log, pid, db (./coturn-data)
#   --secret S         static-auth-secret, >= 16 characters (default: DIR/secret,
#                      generated once and kept)
#   --listen-ip IP     address clients reach coturn at (127.0.0.1); repeatable
#   --relay-ip IP      address coturn relays from (default: coturn picks the
#                      listening address)
#   --external-ip IP   public address announced behind a 1:1 NAT (none)
#   --host NAME        host put in the printed turn_urls (the first --listen-ip,
#                      or --external-ip)
#   --port N           TURN over UDP and TCP (3478)
#   --tls-port N       TURN over TLS (5349; 443 in production: see docs/deploying.md)
#   --cert F --key F   TLS certificate chain and key, PEM (default: a self-signed
#                      pair for --host, generated in DIR)
#   --peer IP          an SFU media address (rtc_addresses or rtc_announced_address);
#                      coturn relays to these only (127.0.0.1); repeatable
#   --min-port N --max-port N  relay ports (49152-65535)
#   --realm R          realm (sfu)
#   --verbose          log every session and request (coturn's verbose)
#   --print-only       write the files and print the settings; do not start
set -euo pipefail

die() { echo "coturn.sh: $*" >&2; exit 2; }

dir=./coturn-data secret= listen=() relay= external= host= port=3478 tls_port=5349
cert= key= peers=() min_port=49152 max_port=65535 realm=sfu print_only=0 verbose=0
while [ $# -gt 0 ]; do
  case $1 in
    --print-only|--verbose|-h|--help) ;;
    *) [ $# -ge 2 ] || die "option '$1' needs a value" ;;
  esac
  case $1 in
    --dir) dir=$2; shift ;;
    --secret) secret=$2; shift ;;
    --listen-ip) listen+=("$2"); shift ;;
    --relay-ip) relay=$2; shift ;;
    --external-ip) external=$2; shift ;;
    --host) host=$2; shift ;;
    --port) port=$2; shift ;;
    --tls-port) tls_port=$2; shift ;;
    --cert) cert=$2; shift ;;
    --key) key=$2; shift ;;
    --peer) peers+=("$2"); shift ;;
    --min-port) min_port=$2; shift ;;
    --max-port) max_port=$2; shift ;;
    --realm) realm=$2; shift ;;
    --print-only) print_only=1 ;;
    --verbose) verbose=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

command -v turnserver >/dev/null || die "turnserver not found: apt-get install coturn"
command -v openssl >/dev/null || die "openssl not found"
[ ${#listen[@]} -gt 0 ] || listen=(127.0.0.1)
[ ${#peers[@]} -gt 0 ] || peers=(127.0.0.1)
[ -n "$host" ] || host=${external:-${listen[0]}}
if [ -n "$cert" ] && [ -z "$key" ] || [ -z "$cert" ] && [ -n "$key" ]; then
  die "--cert and --key go together"
fi
for p in "$port" "$tls_port" "$min_port" "$max_port"; do
  [[ $p =~ ^[0-9]+$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "bad port '$p'"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
umask 077
if [ -z "$secret" ]; then
  [ -s "$dir/secret" ] || openssl rand -hex 32 > "$dir/secret"
  secret=$(cat "$dir/secret")
fi
[ ${#secret} -ge 16 ] || die "--secret must have at least 16 characters"

if [ -z "$cert" ]; then
  cert=$dir/cert.pem key=$dir/key.pem
  if [ ! -s "$cert" ] || [ ! -s "$key" ]; then
    if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san=IP:$host; else san=DNS:$host; fi
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
      -keyout "$key" -out "$cert" -subj "/CN=$host" -addext "subjectAltName=$san" \
      2>/dev/null || die "cannot make a self-signed certificate"
    echo "coturn.sh: self-signed certificate for $host in $cert (browsers refuse turns: with" \
         "it unless they trust it)" >&2
  fi
fi

url_host=$host
[[ $url_host == *:* ]] && url_host="[$url_host]"   # IPv6 literal

{
  echo "# written by scripts/coturn.sh"
  for ip in "${listen[@]}"; do echo "listening-ip=$ip"; done
  [ -z "$relay" ] || echo "relay-ip=$relay"
  [ -z "$external" ] || echo "external-ip=$external/${relay:-${listen[0]}}"
  echo "listening-port=$port"
  echo "tls-listening-port=$tls_port"
  echo "min-port=$min_port"
  echo "max-port=$max_port"
  echo "use-auth-secret"
  echo "static-auth-secret=$secret"
  echo "realm=$realm"
  echo "cert=$cert"
  echo "pkey=$key"
  echo "no-tlsv1"
  echo "no-tlsv1_1"
  echo "no-dtls"
  echo "no-cli"
  echo "fingerprint"
  echo "no-software-attribute"
  echo "no-multicast-peers"
  # a relay for the SFU only, not an open proxy into any network
  echo "denied-peer-ip=0.0.0.0-255.255.255.255"
  echo "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
  for ip in "${peers[@]}"; do
    echo "allowed-peer-ip=$ip"
    [[ $ip == 127.* || $ip == ::1 ]] && echo "allow-loopback-peers"
  done
  echo "pidfile=$dir/turnserver.pid"
  echo "userdb=$dir/turndb"
  echo "log-file=$dir/turn.log"
  echo "simple-log"
  [ "$verbose" = 0 ] || echo "verbose"
} > "$dir/turnserver.conf"

urls="turn:$url_host:$port?transport=udp,turn:$url_host:$port?transport=tcp"
urls="$urls,turns:$url_host:$tls_port?transport=tcp"
cat <<EOF
# sfud settings for this TURN server (a config file; or --turn-urls ... flags,
# or SFU_TURN_URLS=... in the environment):
turn_urls = $urls
turn_secret = $secret
turn_ttl_s = 86400
# coturn: config $dir/turnserver.conf, log $dir/turn.log
EOF

[ "$print_only" = 1 ] && exit 0
exec turnserver -c "$dir/turnserver.conf"
