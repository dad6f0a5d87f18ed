"""Sign and verify sfud webhook requests (docs/webhooks.md), stdlib only.

sfud signs every delivery with the shared webhook secret:

    X-SFU-Timestamp: 1795694400
    X-SFU-Signature: v1=<hex HMAC-SHA256(secret, b"1795694400" + b"." + body)>

The signed message is the timestamp header value exactly as sent, one ASCII
dot, then the raw body bytes as received -- never a re-serialised body. The
secret is used as the bytes of the configured string (UTF-8), not decoded
from hex or base64.

    >>> sign("s3cret", 1795694400, b'{"node":"n1","records":[]}')
    'v1=6b4c5ac7a49b61e1433e33ecd4022d4ca87b8a9a98b7e07a1b2b2bf73e30ab43'

(the same vector is in docs/webhooks.md and tests/integration/test_receiver.py)

    ok, reason = verify(secret, request_headers, raw_body, time.time())

``verify`` accepts a list of secrets (rotation: accept the old and the new
while sfud switches) and a signature header that lists several
comma-separated ``scheme=hex`` entries, of which it checks the ``v1`` ones and
ignores unknown schemes (room for a future algorithm). Comparison is
constant-time. It returns ``(True, "ok")`` or ``(False, reason)`` with reason
one of: ``missing_timestamp``, ``invalid_timestamp``, ``stale_timestamp``,
``missing_signature``, ``invalid_signature`` (no well-formed v1 entry),
``bad_signature`` (no v1 entry matches), ``duplicate_header``.

Used by tools/sfu-receiver.py and by the tests; operators may copy it.
"""
import hashlib
import hmac

TIMESTAMP_HEADER = "X-SFU-Timestamp"
SIGNATURE_HEADER = "X-SFU-Signature"
BATCH_HEADER = "X-SFU-Batch"
MAX_SKEW_S = 300

_HEX = frozenset("0123456789abcdef")


def _bytes(v):
    return v if isinstance(v, (bytes, bytearray)) else str(v).encode("utf-8")


def _secrets(secret):
    if isinstance(secret, (str, bytes, bytearray)):
        return [_bytes(secret)]
    return [_bytes(s) for s in secret]


def signature_hex(secret, timestamp, body):
    """Lower-case hex HMAC-SHA256 of "<timestamp>.<body>" under `secret`."""
    msg = _bytes(timestamp) + b"." + _bytes(body)
    return hmac.new(_bytes(secret), msg, hashlib.sha256).hexdigest()


def sign(secret, timestamp, body):
    """The X-SFU-Signature header value for `body` sent at `timestamp`
    (unix seconds, int or its decimal string)."""
    return "v1=" + signature_hex(secret, timestamp, body)


def _header(headers, name):
    """All values of header `name`, case-insensitively, from a dict or an
    email.message.Message (http.server's request headers)."""
    want = name.lower()
    return [v for k, v in headers.items() if k.lower() == want]


def verify(secret, headers, body, now, max_skew=MAX_SKEW_S):
    """Check the timestamp window and the signature of one request.

    secret   -- str/bytes, or a list of them (any may match)
    headers  -- mapping of the request headers (case-insensitive lookup)
    body     -- the raw body bytes as received
    now      -- the receiver's clock, unix seconds
    Returns (ok, reason)."""
    ts = _header(headers, TIMESTAMP_HEADER)
    sig = _header(headers, SIGNATURE_HEADER)
    if len(ts) > 1 or len(sig) > 1:
        return False, "duplicate_header"
    if not ts:
        return False, "missing_timestamp"
    if not sig:
        return False, "missing_signature"
    ts = ts[0].strip()
    # Decimal digits only: the signed bytes are this exact string, so a
    # "+17…" or " 17…" must not verify as the same instant.
    if not ts.isascii() or not ts.isdigit() or len(ts) > 12:
        return False, "invalid_timestamp"
    if abs(now - int(ts)) > max_skew:
        return False, "stale_timestamp"
    candidates = []
    for part in sig[0].split(","):
        scheme, eq, value = part.strip().partition("=")
        if eq and scheme == "v1":
            value = value.strip().lower()
            if len(value) == 64 and set(value) <= _HEX:
                candidates.append(value)
    if not candidates:
        return False, "invalid_signature"
    ok = False
    for s in _secrets(secret):
        expected = signature_hex(s, ts, body)
        for c in candidates:  # no early exit: constant work per request
            ok |= hmac.compare_digest(expected, c)
    return (True, "ok") if ok else (False, "bad_signature")
