#!/usr/bin/env python3
"""Independent reference for ssiat's init commitment, written from docs/provenance.md (and, for
the draws themselves, docs/init.md through init_reference.py beside this file).

Pure Python, standard library only. From a recipe (TOML; only its [model] section is read) and a
master seed it regenerates every initial tensor, encodes each as a leaf (docs/provenance.md
section 2), and prints the RFC 6962 Merkle root of the leaves (section 3):

  provenance_reference.py RECIPE.toml --seed S
prints "leaf <name> <leaf hash hex>" per tensor, in order, then "root <hex>".
The C++ test tests/tools/test_provenance_cli.cpp compares it with the trainer's seeds.jsonl.
"""
import argparse
import hashlib
import math
import os
import struct
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import init_reference as ir  # noqa: E402  (docs/init.md: KDF, Philox, transforms)


def tensors(model):
    """(name, shape, spec) in the order of docs/provenance.md section 1."""
    V, C, L = model["vocab_size"], model["d_model"], model["n_layer"]
    NH = model["n_head"]
    NKV = model.get("n_kv_head", 0) or NH
    F = model["d_ff"]
    HS = C // NH
    std = float(model.get("init_std", 0.02))
    std_out = std / math.sqrt(2.0 * L)
    normal = lambda s: {"fn": "normal", "mean": 0.0, "std": s}
    ones = {"fn": "ones"}
    out = [("model.embed_tokens.weight", [V, C], normal(std))]
    for l in range(L):
        p = "model.layers.%d." % l
        out += [
            (p + "input_layernorm.weight", [C], ones),
            (p + "self_attn.q_proj.weight", [NH * HS, C], normal(std)),
            (p + "self_attn.k_proj.weight", [NKV * HS, C], normal(std)),
            (p + "self_attn.v_proj.weight", [NKV * HS, C], normal(std)),
            (p + "self_attn.o_proj.weight", [C, NH * HS], normal(std_out)),
            (p + "post_attention_layernorm.weight", [C], ones),
            (p + "mlp.gate_proj.weight", [F, C], normal(std)),
            (p + "mlp.up_proj.weight", [F, C], normal(std)),
            (p + "mlp.down_proj.weight", [C, F], normal(std_out)),
        ]
    out.append(("model.norm.weight", [C], ones))
    if not model.get("tied_embeddings", False):
        out.append(("lm_head.weight", [V, C], normal(std)))
    return out


def u64(v):
    return struct.pack("<Q", v)


def leaf_bytes(name, shape, spec, data):
    params = {"zeros": [], "ones": [], "uniform": ["lo", "hi"], "normal": ["mean", "std"],
              "trunc_normal": ["mean", "std", "a", "b"]}[spec["fn"]]
    b = b"ssiat/init-leaf/v1" + b"\x00"
    for s in (name.encode("utf-8"), b"float32"):
        b += u64(len(s)) + s
    b += u64(len(shape)) + b"".join(u64(d) for d in shape)
    fn = spec["fn"].encode()
    b += u64(len(fn)) + fn + u64(len(params)) + b"".join(struct.pack("<d", float(spec[k])) for k in params)
    return b + u64(len(data)) + data


def tensor_bytes(seed, name, shape, spec):
    n = 1
    for d in shape:
        n *= d
    if spec["fn"] in ("zeros", "ones"):
        return struct.pack("<f", 0.0 if spec["fn"] == "zeros" else 1.0) * n
    key = ir.derive_key(seed, "init/" + name)
    return b"".join(struct.pack("<f", ir.value(spec, key, i)) for i in range(n))


def mth(leaf_hashes):
    """RFC 6962 section 2.1 over leaf hashes."""
    n = len(leaf_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaf_hashes[:k]) + mth(leaf_hashes[k:])).digest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--seed", type=int, required=True)
    a = ap.parse_args()
    with open(a.recipe, "rb") as f:
        model = tomllib.load(f)["model"]
    leaves = []
    lines = []
    for name, shape, spec in tensors(model):
        h = hashlib.sha256(b"\x00" + leaf_bytes(name, shape, spec, tensor_bytes(a.seed, name, shape, spec))).digest()
        leaves.append(h)
        lines.append("leaf %s %s" % (name, h.hex()))
    lines.append("root " + mth(leaves).hex())
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
