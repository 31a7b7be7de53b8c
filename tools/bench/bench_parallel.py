"""Parallel-training benchmark (issue 9): bytes per rank per step, step time, memory per rank.

Contract: `python3 bench_parallel.py [--ssiat PATH] [--steps N] [--threads K] [--record]
[--perf-md PATH]`. In a temporary directory it prepares tests/data/ko_sample.txt with the byte
tokenizer, then trains the same model (RECIPE below: ~3.2M parameters, global batch 8 × 128
tokens, no evaluation, no checkpoint but the last) once per layout: one process, dp 2, dp 2 with
ZeRO-1, tp 2, dp 4, dp 4 with ZeRO-1, tp 4, dp 2 × tp 2 — each under `mpirun --oversubscribe
-np dp·tp` with OMP_NUM_THREADS = K (default 1) per rank, global batch fixed through
grad_accum and micro_batch. From metrics.jsonl (rank 0's), averaged over the steps after the
first: comm_bytes (what rank 0 handed its communicators for other ranks, counted by
distributed/comm.h), tokens/s, optimizer_state_mb and peak_rss_mb. Beside comm_bytes it prints
the analytic minimum per rank per step:
  data parallel (plain or ZeRO-1): a reduce-scatter and an all-gather of the P f32 gradients /
    parameters: 2 (dp-1)/dp · 4P bytes (ZeRO-1 moves the same bytes; it saves memory);
  tensor parallel, per micro-batch of N tokens: all-reduces of N·C activations — the embedding
    and 2 per layer forward (row-parallel outputs), 2 per layer and the LM head backward
    (column-parallel input gradients), (4L + 2) in all — each 2 (tp-1)/tp · 4NC bytes; the
    cross-entropy's row-max all-gather (tp-1)·4N and its 2N-element all-reduce 2 (tp-1)/tp·8N;
  plus, per step, the f64 loss and grad-norm all-reduces and the stop-signal check (a few hundred
    bytes), which the minimum leaves out.
The ratio measured/minimum should be ~1.00: the communicator sends only what the collectives
must. Step times on this 2-core machine oversubscribe 4 ranks, so they show overheads, not
speed-ups. With --record it appends a dated record (commit, CPU, table) to docs/perf.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# d_model 256, 4 layers, 8 heads (4 kv), d_ff 704, vocab 260 (byte tokenizer; divisible by 4).
RECIPE = """seed = 5
[model]
vocab_size = 260
n_layer = 4
d_model = 256
n_head = 8
n_kv_head = 4
d_ff = 704
max_seq_len = 128
[data]
train = "prep"
[train]
steps = {steps}
micro_batch = 4
seq_len = 128
grad_accum = 2
eval_interval = 0
log_interval = 1000
[optim]
lr = 0.001
[checkpoint]
interval = 0
"""

# (name, dp, tp, zero1, micro_batch, grad_accum): global batch micro_batch × grad_accum × dp = 8.
LAYOUTS = [
    ("one process", 1, 1, False, 4, 2),
    ("dp2", 2, 1, False, 4, 1),
    ("dp2 zero1", 2, 1, True, 4, 1),
    ("tp2", 1, 2, False, 4, 2),
    ("dp4", 4, 1, False, 2, 1),
    ("dp4 zero1", 4, 1, True, 2, 1),
    ("tp4", 1, 4, False, 4, 2),
    ("dp2 x tp2", 2, 2, False, 4, 1),
]
L, C, T = 4, 256, 128


def params():
    V, NH, NKV, F = 260, 8, 4, 704
    hs = C // NH
    per_layer = 2 * C + (NH + 2 * NKV) * hs * C + C * NH * hs + 3 * F * C
    return 2 * V * C + L * per_layer + C  # untied embedding and head, final norm


def analytic_bytes(dp, tp, mb, accum):
    b = 0.0
    P = params()
    if dp > 1:
        # each tp rank's shard of the flat buffer (replicated norms included in every shard)
        local = P / tp if tp > 1 else P
        b += 2 * (dp - 1) / dp * 4 * local
    if tp > 1:
        N = mb * T
        per_mb = (4 * L + 2) * 2 * (tp - 1) / tp * 4 * N * C + (tp - 1) * 4 * N + 2 * (tp - 1) / tp * 8 * N
        b += accum * per_mb
    return b


def run(cmd, env, cwd):
    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_parallel: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-500:]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssiat", default=os.path.join(ROOT, "build", "ssiat"))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--perf-md", default=os.path.join(ROOT, "docs", "perf.md"))
    a = ap.parse_args()
    ssiat = os.path.abspath(a.ssiat)
    mpirun = shutil.which("mpirun")
    if not os.access(ssiat, os.X_OK) or not mpirun:
        sys.exit(f"bench_parallel: needs {ssiat} (--ssiat) and mpirun on PATH")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    work = tempfile.mkdtemp(prefix="ssiat_bench_parallel_")
    try:
        shutil.copy(os.path.join(ROOT, "tests", "data", "ko_sample.txt"), os.path.join(work, "train.txt"))
        run([ssiat, "data", "prepare", "--input", "train.txt", "--out", "prep"], env, work)
        with open(os.path.join(work, "bench.toml"), "w") as f:
            f.write(RECIPE.format(steps=a.steps))
        rows = []
        for name, dp, tp, zero1, mb, accum in LAYOUTS:
            run_dir = "run_" + name.replace(" ", "_")
            sets = [f"parallel.dp={dp}", f"parallel.tp={tp}", f"parallel.zero1={'true' if zero1 else 'false'}",
                    f"train.micro_batch={mb}", f"train.grad_accum={accum}"]
            train = [ssiat, "train", "bench.toml", "-q", "--run-dir", run_dir]
            for s in sets:
                train += ["--set", s]
            if dp * tp == 1:
                run(train, env, work)
            else:
                run([mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(dp * tp)] + train, env, work)
            with open(os.path.join(work, run_dir, "metrics.jsonl")) as f:
                m = [json.loads(line) for line in f if line.strip()][1:]  # the first step warms up
            avg = lambda k: sum(x[k] for x in m) / len(m)
            measured = avg("comm_bytes")
            minimum = analytic_bytes(dp, tp, mb, accum)
            rows.append((name, dp * tp, measured, minimum, avg("tokens_per_s"), m[-1]["optimizer_state_mb"],
                         max(x["peak_rss_mb"] for x in m)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    head = ("| layout | ranks | bytes/rank/step | analytic min | ratio | tokens/s | step ms | moments MB (rank 0) "
            "| peak RSS MB (rank 0) |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, n, meas, mn, tps, mom, rss in rows:
        ratio = f"{meas / mn:.3f}" if mn > 0 else "—"
        step_ms = 8 * T / tps * 1e3
        lines.append(f"| {name} | {n} | {meas:,.0f} | {mn:,.0f} | {ratio} | {tps:,.0f} | {step_ms:.0f} | {mom:.1f} "
                     f"| {rss:.0f} |")
    table = "\n".join(lines)
    print(f"model: {params():,} parameters; global batch 8 x {T} tokens; OMP_NUM_THREADS={a.threads} per rank")
    print(table)
    if a.record:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
                   platform.processor())
        with open(a.perf_md, "a") as f:
            f.write(f"\n### Parallel training ({datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC)\n\n"
                    f"commit {commit}{'+dirty' if dirty else ''}, {cpu}, {os.cpu_count()} CPUs, "
                    f"`tools/bench/bench_parallel.py --steps {a.steps} --threads {a.threads}`; "
                    f"{params():,} parameters, global batch 8 × {T} tokens, mpirun --oversubscribe, "
                    f"{a.threads} thread(s) per rank.\n\n{table}\n\n"
                    "bytes/rank/step: what rank 0 handed its communicators for other ranks, counted by "
                    "distributed/comm.h; analytic min: the collectives' required bytes (the script's header); "
                    "the difference is the per-step f64 loss/grad-norm all-reduces and the stop-signal check. "
                    "ZeRO-1 sends what plain DP sends and keeps 1/dp of the moments. With 2 CPUs, 4 ranks "
                    "oversubscribe the machine: their step times show overheads, not speed-ups.\n")


if __name__ == "__main__":
    main()
