"""Init-regeneration benchmark (issue 10): ssiat regenerating and hashing a recipe's initial
weights against PyTorch initialising the same shapes, in the same invocation.

Contract: `python3 bench_init.py [RECIPE] [--ssiat PATH] [--seed S] [--threads K] [--record]
[--perf-md PATH]` (default recipes/gpu-1b.toml, ~1.1B parameters). Each side runs in its own
child process with OMP_NUM_THREADS = K (default: the number of CPUs):
  ssiat:   `ssiat init-root RECIPE --seed S`: draws every tensor from its Philox stream (docs/init.md),
           hashes its leaf and the Merkle root (docs/provenance.md), one tensor at a time;
  PyTorch: allocates every tensor of the same table (float32, CPU) and initialises it with
           torch.nn.init.normal_ (std as the recipe's, σ/√(2L) for o_proj and down_proj) or ones_,
           keeping them all, as a model holds its weights; no hashing (PyTorch has none to do).
Each prints one JSON line with seconds and peak RSS; the table gives both and the ratio (PyTorch's
time over ssiat's: above 1 means ssiat is faster). With --record a dated record goes to
docs/perf.md.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

TORCH_CHILD = r"""
import json, math, resource, sys, time, tomllib
import torch
threads = int(sys.argv[2])
torch.set_num_threads(threads)
with open(sys.argv[1], "rb") as f:
    m = tomllib.load(f)["model"]
V, C, L, NH, F = m["vocab_size"], m["d_model"], m["n_layer"], m["n_head"], m["d_ff"]
NKV = m.get("n_kv_head", 0) or NH
HS = C // NH
std = float(m.get("init_std", 0.02))
out = std / math.sqrt(2.0 * L)
shapes = [((V, C), std)]
for _ in range(L):
    shapes += [((C,), None), ((NH * HS, C), std), ((NKV * HS, C), std), ((NKV * HS, C), std), ((C, NH * HS), out),
               ((C,), None), ((F, C), std), ((F, C), std), ((C, F), out)]
shapes.append(((C,), None))
if not m.get("tied_embeddings", False):
    shapes.append(((V, C), std))
torch.manual_seed(0)
t0 = time.perf_counter()
kept = []
for shape, s in shapes:
    t = torch.empty(shape, dtype=torch.float32)
    if s is None:
        torch.nn.init.ones_(t)
    else:
        torch.nn.init.normal_(t, mean=0.0, std=s)
    kept.append(t)
dt = time.perf_counter() - t0
params = sum(t.numel() for t in kept)
print(json.dumps({"seconds": dt, "params": params, "tensors": len(kept),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "torch": torch.__version__}))
"""


def child(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_init: {' '.join(cmd[:3])} failed ({r.returncode}): {r.stderr.strip()[-400:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", nargs="?", default=os.path.join(ROOT, "recipes", "gpu-1b.toml"))
    ap.add_argument("--ssiat", default=os.path.join(ROOT, "build", "ssiat"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--perf-md", default=os.path.join(ROOT, "docs", "perf.md"))
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    ours = child([a.ssiat, "init-root", a.recipe, "--seed", str(a.seed)], env)
    peer = child([sys.executable, "-c", TORCH_CHILD, a.recipe, str(a.threads)], env)
    if ours["params"] != peer["params"]:
        sys.exit(f"bench_init: parameter counts differ: ssiat {ours['params']}, torch {peer['params']}")
    ratio = peer["seconds"] / ours["seconds"]
    table = ("| recipe | params | ssiat regenerate + hash s | ssiat peak MB | torch init s | torch peak MB | speed ratio |\n"
             "|---|---|---|---|---|---|---|\n"
             f"| {os.path.basename(a.recipe)} | {ours['params']:,} | {ours['seconds']:.2f} | {ours['peak_rss_mb']:.0f} "
             f"| {peer['seconds']:.2f} | {peer['peak_rss_mb']:.0f} | {ratio:.2f} |")
    print(table)
    print(f"init root {ours['root']} (seed {a.seed}); torch {peer['torch']}; {a.threads} threads")
    if a.record:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
                   platform.processor())
        with open(a.perf_md, "a") as f:
            f.write(f"\n### Init regeneration ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC)\n\n"
                    f"commit {commit}, {cpu}, {os.cpu_count()} CPUs, {a.threads} threads, torch {peer['torch']}; "
                    f"`tools/bench/bench_init.py`: ssiat draws every initial tensor from its Philox stream and hashes "
                    f"its leaf and the Merkle root, one tensor at a time; PyTorch allocates and initialises the same "
                    f"shapes (normal_/ones_, float32) and keeps them, without hashing. Ratio: PyTorch's seconds over "
                    f"ssiat's.\n\n{table}\n")


if __name__ == "__main__":
    main()
