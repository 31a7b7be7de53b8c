"""Training-step benchmark: ssiat against eager PyTorch on the CPU, float32, same thread count.

Contract: `python3 bench_train.py [RECIPE ...] [--ssiat PATH] [--steps N] [--warmup W]
[--threads K] [--repeats R] [--set section.key=value ...] [--no-record] [--perf-md PATH]`.
For each recipe (default: recipes/ko-tiny.toml and recipes/bench-gpt2s.toml) it runs
`ssiat bench train-step` and tools/bench/torch_llama.py, each in its own child process (so each
peak RSS is that side's alone) with OMP_NUM_THREADS = K (default: the number of CPUs), the same
steps, warmup and overrides; with --repeats R each side runs R times, alternating which goes
first, and its best tokens/s (highest peak RSS) is kept. Each child prints one JSON line
  {"tokens_per_s", "step_ms", "peak_rss_mb", "params", "threads"}.
It prints a table, and unless --no-record appends a dated record (commit, CPU model, cores,
torch version, threads, steps) to docs/perf.md, creating the file with a title if missing. Only
measured numbers are written. Exits non-zero when a child fails or when the two sides disagree on
the parameter count or the thread count (nothing is recorded for such a recipe).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_RECIPES = ["recipes/ko-tiny.toml", "recipes/bench-gpt2s.toml"]
BUSY_CORES = 0.25  # other processes' average CPU use above which a record is marked busy
RESULT_KEYS = ("tokens_per_s", "step_ms", "peak_rss_mb", "params", "threads")
PERF_HEADER = """# ssiat performance log

Training-step throughput of ssiat against eager PyTorch (float32, CPU, same thread count, same
model built from the same recipe, random tokens), appended by `tools/bench/run_bench.sh`. One
step = forward + backward + grad-norm clip + AdamW. Peak RSS is each side's own process
(`getrusage` ru_maxrss). Ratios are ssiat / PyTorch: above 1 means ssiat is faster for
tokens/s, and uses more memory for peak MB. Each record also states how many CPUs other
processes kept busy during the kept runs (from /proc/stat); a record with much interference is
marked busy and its ratios are not representative. Every number here was measured; never edit
one by hand.
"""


def child_env(threads):
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def machine_busy_s():
    """CPU-seconds all processes have spent busy since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_child(name, cmd, threads):
    """Runs one side; returns its parsed JSON line or raises RuntimeError with one line. Adds
    "others_cores": the CPUs that other processes kept busy, on average, while it ran (its
    whole life, startup included): the interference its timing suffered."""
    busy0, cpu0, wall0 = machine_busy_s(), children_cpu_s(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(threads), capture_output=True, text=True)
    busy1, cpu1, wall1 = machine_busy_s(), children_cpu_s(), time.perf_counter()
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"{name} exited {proc.returncode}: {err}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"{name} printed no JSON line; stdout: {proc.stdout.strip()[:200]!r}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{name} printed bad JSON ({e}): {lines[-1][:200]!r}") from None
    missing = [k for k in RESULT_KEYS if k not in result]
    if missing:
        raise RuntimeError(f"{name} JSON lacks {', '.join(missing)}: {lines[-1][:200]!r}")
    if busy0 is not None and busy1 is not None:
        others = (busy1 - busy0) - (cpu1 - cpu0)  # CPU-seconds of everything but this child
        result["others_cores"] = max(0.0, others) / max(wall1 - wall0, 1e-9)
    return result


def best_of(results):
    """Best run of one side: highest tokens/s (the least disturbed by other load); peak RSS is
    the highest seen, so memory is never understated."""
    best = dict(max(results, key=lambda r: r["tokens_per_s"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    return best


def bench_recipe(recipe, args):
    common = [recipe, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    for item in args.overrides:
        common += ["--set", item]
    sides = {
        "ssiat": [args.ssiat, "bench", "train-step"] + common,
        "torch": [sys.executable, os.path.join(HERE, "torch_llama.py")] + common + [
            "--threads", str(args.threads)],
    }
    runs = {"ssiat": [], "torch": []}
    for rep in range(args.repeats):  # alternate which side goes first, so drift hits both
        order = ["ssiat", "torch"] if rep % 2 == 0 else ["torch", "ssiat"]
        for name in order:
            r = run_child(name, sides[name], args.threads)
            runs[name].append(r)
            print(f"bench: {recipe} {name} run {rep + 1}: {r['tokens_per_s']:.1f} tokens/s, "
                  f"{r['step_ms']:.1f} ms/step, peak {r['peak_rss_mb']:.0f} MB, others kept "
                  f"{r.get('others_cores', float('nan')):.2f} CPUs busy", file=sys.stderr)
    s, t = best_of(runs["ssiat"]), best_of(runs["torch"])
    problems = []
    if s["params"] != t["params"]:
        problems.append(f"parameter counts differ: ssiat {s['params']}, torch {t['params']}")
    if s["threads"] != t["threads"]:
        problems.append(f"thread counts differ: ssiat {s['threads']}, torch {t['threads']}")
    return s, t, problems


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform()}


def torch_version():
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def git_commit():
    def git(*a):
        return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout
    head = git("rev-parse", "--short=12", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return head + ("+dirty" if dirty else "")


def table(rows):
    head = ["model", "params", "tok/s ssiat", "tok/s torch", "ratio", "peak MB ssiat",
            "peak MB torch", "ratio"]
    body = []
    for name, s, t in rows:
        body.append([name, f"{s['params']:,}", f"{s['tokens_per_s']:.1f}",
                     f"{t['tokens_per_s']:.1f}", f"{s['tokens_per_s'] / t['tokens_per_s']:.2f}",
                     f"{s['peak_rss_mb']:.0f}", f"{t['peak_rss_mb']:.0f}",
                     f"{s['peak_rss_mb'] / t['peak_rss_mb']:.2f}"])
    return head, body


def print_table(head, body):
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    for r in [head] + body:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def markdown_record(head, body, rows, args, info):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"## {now} — commit {git_commit()}", "",
             f"Machine: {info['cpu']}, {info['cores']} cores; torch {torch_version()}; "
             f"threads {args.threads}; steps {args.steps} (warmup {args.warmup}), best of "
             f"{args.repeats} alternating run(s) per side; "
             f"load average at start {args.load_at_start:.2f}, at end {load:.2f}."]
    others = [r.get("others_cores") for _, s, t in rows for r in (s, t)]
    if None not in others:
        worst = max(others)
        lines.append("CPUs kept busy by other processes during the kept runs (ssiat / torch): "
                     + "; ".join(f"{name} {s['others_cores']:.2f} / {t['others_cores']:.2f}"
                                 for name, s, t in rows) + ".")
        if worst > BUSY_CORES:
            lines.append(f"**Busy machine**: other processes used up to {worst:.2f} of "
                         f"{info['cores']} CPUs during a kept run, so these timings understate "
                         "the sides by unequal amounts; do not read the ratios as representative.")
    if args.overrides:
        lines.append("Overrides: " + " ".join(f"`--set {o}`" for o in args.overrides) + ".")
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["", "Step ms (ssiat / torch): " + "; ".join(
        f"{name} {s['step_ms']:.1f} / {t['step_ms']:.1f}" for name, s, t in rows) + "."]
    imported = [t["import_rss_mb"] for _, _, t in rows if "import_rss_mb" in t]
    if imported:
        lines.append(f"PyTorch's peak MB includes about {max(imported):.0f} MB for the runtime "
                     "itself (`import torch`, before any model).")
    lines.append("")
    return "\n".join(lines) + "\n"


def append_record(path, text):
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        if new:
            f.write(PERF_HEADER + "\n")
        f.write(text)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipes", nargs="*", default=DEFAULT_RECIPES)
    ap.add_argument("--ssiat", default=os.path.join(ROOT, "build-bench", "ssiat"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per side, alternating order; the best tokens/s is kept")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE")
    ap.add_argument("--no-record", action="store_true", help="do not append to docs/perf.md")
    ap.add_argument("--perf-md", default=os.path.join(ROOT, "docs", "perf.md"))
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.repeats < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --threads >= 1, --repeats >= 1")
    args.load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    info = machine_info()
    print(f"bench: {info['cpu']}, {info['cores']} cores, threads {args.threads}, "
          f"steps {args.steps}, warmup {args.warmup}, repeats {args.repeats}", file=sys.stderr)
    if args.load_at_start > 0.5 * (info["cores"] or 1):
        print(f"bench: warning: load average {args.load_at_start:.2f} on {info['cores']} cores; "
              "other work will disturb the timings (it is measured and recorded)", file=sys.stderr)

    rows, failed = [], False
    for recipe in args.recipes:
        name = os.path.splitext(os.path.basename(recipe))[0]
        try:
            s, t, problems = bench_recipe(recipe, args)
        except (RuntimeError, OSError) as e:
            print(f"bench: {recipe}: error: {e}", file=sys.stderr)
            failed = True
            continue
        for p in problems:
            print(f"bench: {recipe}: error: {p}", file=sys.stderr)
        if problems:
            failed = True
            continue
        rows.append((name, s, t))

    if rows:
        head, body = table(rows)
        print_table(head, body)
        if not args.no_record:
            append_record(args.perf_md, markdown_record(head, body, rows, args, info))
            print(f"bench: appended to {args.perf_md}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
