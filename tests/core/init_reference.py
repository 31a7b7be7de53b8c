#!/usr/bin/env python3
"""Independent reference for ssiat's parameter initialisation, written from docs/init.md alone.

Pure Python, standard library only (hashlib, struct): Python floats are IEEE-754 doubles and each
arithmetic operator is one correctly rounded operation (no FMA, no extended precision), so the
step-by-step algorithms of docs/init.md are reproduced bit for bit. math.sqrt is the correctly
rounded IEEE square root; no other math function is used.

Usage:
  init_reference.py --seed N --name STREAM --spec JSON --begin B --count C
prints "key <16 hex digits>", then per element "<index> <double bits, 16 hex> <float32 bits, 8 hex>".
The C++ test tests/core/test_init.cpp runs it and compares the bits exactly.
"""
import argparse
import hashlib
import json
import math
import struct
import sys

MASK32 = 0xFFFFFFFF

# ---- 1. KDF ssiat/kdf/v1 ----------------------------------------------------------------------

def derive_key(seed, name):
    msg = b"ssiat/kdf/v1" + b"\x00" + struct.pack("<Q", seed) + name.encode("utf-8")
    d = hashlib.sha256(msg).digest()
    k0, k1 = struct.unpack("<II", d[:8])
    return (k0, k1)


def key_hex(key):
    return "%08x%08x" % key

# ---- 2. Philox4x32-10 ------------------------------------------------------------------------

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for rnd in range(10):
        if rnd > 0:
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> 32, p0 & MASK32
        hi1, lo1 = p1 >> 32, p1 & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return (c0, c1, c2, c3)


# Random123 tests/kat_vectors, philox4x32 10 (as listed in docs/init.md).
_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32, MASK32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

# ---- 3. Counter layout -----------------------------------------------------------------------

def block(key, i, attempt):
    return philox4x32_10((i & MASK32, (i >> 32) & MASK32, attempt, 0), key)

# ---- 4. Uniform ------------------------------------------------------------------------------

TWO_M53 = float.fromhex("0x1p-53")


def uniform01(hi, lo):
    a = hi >> 5
    b = lo >> 6
    return float(a * (1 << 26) + b) * TWO_M53

# ---- 5.1 portable_log ------------------------------------------------------------------------

SQRT2 = float.fromhex("0x1.6a09e667f3bcdp+0")
LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
L = [float.fromhex(h) for h in (
    "0x1.5555555555555p-1", "0x1.999999999999ap-2", "0x1.2492492492492p-2", "0x1.c71c71c71c71cp-3",
    "0x1.745d1745d1746p-3", "0x1.3b13b13b13b14p-3", "0x1.1111111111111p-3", "0x1.e1e1e1e1e1e1ep-4",
    "0x1.af286bca1af28p-4", "0x1.8618618618618p-4")]  # L1..L10


def _bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def _from_bits(b):
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def portable_log(x):
    if x != x or x < 0.0:
        return float("nan")
    if x == 0.0:
        return float("-inf")
    if x == float("inf"):
        return x
    bits = _bits(x)
    e = 0
    if (bits >> 52) == 0:
        x = x * float.fromhex("0x1p54")
        bits = _bits(x)
        e = -54
    e = e + (bits >> 52) - 1023
    m = _from_bits((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    if m > SQRT2:
        m = m * 0.5
        e = e + 1
    f = m - 1.0
    t = 2.0 + f
    s = f / t
    z = s * s
    p = L[9]
    for k in range(8, -1, -1):  # L9 .. L1
        p = L[k] + z * p
    R = z * p
    hfsq = (0.5 * f) * f
    de = float(e)
    t1 = hfsq + R
    t2 = s * t1
    t3 = de * LN2_LO
    t4 = t2 + t3
    t5 = hfsq - t4
    t6 = t5 - f
    t7 = de * LN2_HI
    return t7 - t6

# ---- 5.2 portable_cos_2pi --------------------------------------------------------------------

TWO_PI = float.fromhex("0x1.921fb54442d18p+2")
S = [float.fromhex(h) for h in (
    "-0x1.5555555555555p-3", "0x1.1111111111111p-7", "-0x1.a01a01a01a01ap-13", "0x1.71de3a556c734p-19",
    "-0x1.ae64567f544e4p-26", "0x1.6124613a86d09p-33", "-0x1.ae7f3e733b81fp-41")]  # S1..S7
C = [float.fromhex(h) for h in (
    "-0x1.0000000000000p-1", "0x1.5555555555555p-5", "-0x1.6c16c16c16c17p-10", "0x1.a01a01a01a01ap-16",
    "-0x1.27e4fb7789f5cp-22", "0x1.1eed8eff8d898p-29", "-0x1.93974a8c07c9dp-37",
    "0x1.ae7f3e733b81fp-45")]  # C1..C8


def sin_poly(x):
    z = x * x
    p = S[6]
    for k in range(5, -1, -1):
        p = S[k] + z * p
    t = z * p
    return x + x * t


def cos_poly(x):
    z = x * x
    p = C[7]
    for k in range(6, -1, -1):
        p = C[k] + z * p
    return 1.0 + z * p


def portable_cos_2pi(u):
    if not (u >= 0.0 and u < 1.0):
        return float("nan")
    if u >= 0.5:
        u = 1.0 - u
    neg = False
    if u > 0.25:
        u = 0.5 - u
        neg = True
    if u > 0.125:
        v = 0.25 - u
        r = sin_poly(v * TWO_PI)
    else:
        r = cos_poly(u * TWO_PI)
    return -r if neg else r

# ---- 6. Distributions ------------------------------------------------------------------------

TRUNC_MAX_ATTEMPTS = 64


def normal_z(key, i, attempt):
    x0, x1, x2, x3 = block(key, i, attempt)
    ua = uniform01(x0, x1)
    ub = uniform01(x2, x3)
    u1 = 1.0 - ua
    l = portable_log(u1)
    t = -2.0 * l
    r = math.sqrt(t)
    c = portable_cos_2pi(ub)
    return r * c


def value(spec, key, i):
    fn = spec["fn"]
    if fn == "zeros":
        return 0.0
    if fn == "ones":
        return 1.0
    if fn == "uniform":
        lo, hi = float(spec["lo"]), float(spec["hi"])
        x0, x1, _, _ = block(key, i, 0)
        u = uniform01(x0, x1)
        w = hi - lo
        return lo + w * u
    if fn == "normal":
        mean, std = float(spec["mean"]), float(spec["std"])
        z = normal_z(key, i, 0)
        return mean + std * z
    if fn == "trunc_normal":
        mean, std = float(spec["mean"]), float(spec["std"])
        a, b = float(spec["a"]), float(spec["b"])
        for attempt in range(TRUNC_MAX_ATTEMPTS):
            z = normal_z(key, i, attempt)
            if a <= z and z <= b:
                return mean + std * z
        x0, x1, _, _ = block(key, i, TRUNC_MAX_ATTEMPTS)
        u = uniform01(x0, x1)
        w = b - a
        z = a + w * u
        return mean + std * z
    raise ValueError("unknown fn %r" % fn)

# ---- 7. Rounding to float32 ------------------------------------------------------------------

def float32_bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def main():
    for ctr, key, want in _KAT:
        got = philox4x32_10(ctr, key)
        if got != want:
            sys.exit("init_reference.py: Philox known-answer mismatch for %r: %r" % (ctr, got))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--spec", required=True, help="InitSpec JSON, e.g. '{\"fn\":\"normal\",\"mean\":0,\"std\":1}'")
    ap.add_argument("--begin", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    args = ap.parse_args()
    key = derive_key(args.seed, args.name)
    spec = json.loads(args.spec)
    out = ["key " + key_hex(key)]
    for i in range(args.begin, args.begin + args.count):
        v = value(spec, key, i)
        out.append("%d %016x %08x" % (i, _bits(v), float32_bits(v)))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
