#!/usr/bin/env python3
"""bench_tokenizer.py — ssiat's BPE tokenizer against SentencePiece's command-line tools.

On one training file and one held-out file (UTF-8, one sentence or paragraph per line), and one
vocabulary size, measures:
  (a) training: wall time, CPU time and peak RSS of `ssiat tokenizer train`, `spm_train
      --model_type=bpe` (byte_fallback, character_coverage 0.9995, all sentences) and, for
      reference, `spm_train --model_type=unigram`; each tool is a child process whose rusage
      comes from os.wait4 (ru_maxrss = its own peak resident set);
  (b) encoding throughput in MB/s of input: the held-out text repeated R times minus the
      held-out text once, so the model load cancels out: (R-1)*bytes / (t_R - t_1), best of
      --repeats; ssiat at each thread count, spm_encode (single-threaded) once per model;
  (c) compression on the held-out text: Hangul syllables (U+AC00..U+D7A3) per token, UTF-8 bytes
      per token (newlines not counted), byte-fallback and <unk> rates, for each model;
  (d) agreement: spm_encode with ssiat's tokenizer.model against `ssiat tokenizer encode`, the
      share of held-out lines whose id sequences are identical; plus decode round trips.
Prints a table with ours/spm ratios and writes every number to a JSON file. The ssiat parts are
skipped, with "ssiat tokenizer not available", when the binary lacks the `tokenizer` subcommand.
Standard library only.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

SPM_COVERAGE = "0.9995"


def busy_seconds():
    """CPU-seconds all CPUs have spent busy since boot (/proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def run(cmd, stdin=None, stdout=None, log=None):
    """Runs cmd as a child; returns {wall_s, cpu_s, peak_rss_mb, others_cpus, rc}.

    others_cpus: CPUs that other processes kept busy meanwhile (above ~0.25 the timing is
    disturbed on a 2-core machine). Files are paths or None."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = open(stdout, "wb") if stdout else subprocess.DEVNULL
    ferr = open(log, "ab") if log else subprocess.DEVNULL
    try:
        b0, t0 = busy_seconds(), time.perf_counter()
        p = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr)
        _, status, ru = os.wait4(p.pid, 0)
        wall, busy = time.perf_counter() - t0, busy_seconds() - b0
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        for f in (fin, fout, ferr):
            if hasattr(f, "close"):
                f.close()
    cpu = ru.ru_utime + ru.ru_stime
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "peak_rss_mb": round(ru.ru_maxrss / 1024.0, 1),
            "others_cpus": round(max(busy - cpu, 0.0) / max(wall, 1e-9), 2), "rc": p.returncode}


def ssiat_has_tokenizer(binary):
    """True when `binary --help` lists a `tokenizer` subcommand whose own help mentions encode.

    `--help` alone is not proof: CLI11 prints the top-level help, exit 0, for an unknown word."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        return False
    top = subprocess.run([binary, "--help"], capture_output=True, text=True)
    listed = any(ln.split()[:1] == ["tokenizer"] for ln in top.stdout.splitlines())
    sub = subprocess.run([binary, "tokenizer", "--help"], capture_output=True, text=True)
    return listed and sub.returncode == 0 and "encode" in sub.stdout


def train_all(a, work, have_ours):
    """(a): trains every model; returns {name: {model, vocab?, wall_s, cpu_s, peak_rss_mb}}."""
    models = {}
    if have_ours:
        out = work / "ours"
        out.mkdir(parents=True, exist_ok=True)
        cmd = [a.ssiat, "tokenizer", "train", "--input", str(a.train), "--vocab-size",
               str(a.vocab), "--out", str(out), "--threads", str(a.threads),
               "--character-coverage", SPM_COVERAGE, "-q"]
        models["ours"] = train_one(cmd, out / "tokenizer.model", work / "ours_train.log")
    for kind in ["bpe"] + ([] if a.no_unigram else ["unigram"]):
        prefix = work / f"spm_{kind}"
        cmd = ["spm_train", f"--input={a.train}", f"--model_prefix={prefix}",
               f"--vocab_size={a.vocab}", f"--model_type={kind}",
               f"--character_coverage={SPM_COVERAGE}", "--byte_fallback=true",
               "--input_sentence_size=0", f"--num_threads={a.threads}"]
        models[f"spm_{kind}"] = train_one(cmd, Path(f"{prefix}.model"),
                                          work / f"spm_{kind}_train.log")
    return models


def train_one(cmd, model_path, log):
    """Runs one trainer; the result names the model file, or holds 'error'."""
    log.write_text("$ " + " ".join(cmd) + "\n")
    print("train:", " ".join(cmd), flush=True)
    r = run(cmd, log=log)
    r["model"] = str(model_path)
    if r["rc"] != 0 or not model_path.is_file():
        r["error"] = f"rc {r['rc']}; see {log}"
        print(f"  FAILED ({r['error']})", flush=True)
    else:
        print(f"  {r['wall_s']} s wall, {r['cpu_s']} s CPU, {r['peak_rss_mb']} MB peak RSS, "
              f"other processes kept {r['others_cpus']} CPUs busy", flush=True)
    return r


def encode_cmd(name, model, a, threads):
    """The encode command for one model: ssiat for 'ours', spm_encode otherwise (stdin -> ids)."""
    if name == "ours":
        return [a.ssiat, "tokenizer", "encode", "--tokenizer", str(Path(model).parent),
                "--threads", str(threads)]
    return ["spm_encode", f"--model={model}", "--output_format=id"]


def throughput(cmd, small, big, reps, repeats):
    """MB/s of input excluding model load: (big - small) bytes / (best t_big - best t_small)."""
    t_small = min(run(cmd, stdin=small)["wall_s"] for _ in range(repeats))
    results = [run(cmd, stdin=big) for _ in range(repeats)]
    if any(r["rc"] != 0 for r in results):
        return {"error": f"rc {results[0]['rc']}"}
    t_big = min(r["wall_s"] for r in results)
    extra = (os.path.getsize(big) - os.path.getsize(small)) / 1e6
    mbps = extra / (t_big - t_small) if t_big > t_small else None
    return {"mb_per_s": round(mbps, 2) if mbps else None, "t_small_s": t_small,
            "t_big_s": t_big, "big_mb": round(os.path.getsize(big) / 1e6, 1),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "others_cpus": min(r["others_cpus"] for r in results)}


def piece_kinds(model):
    """(set of byte-fallback ids, set of unk ids) from spm_export_vocab of a ModelProto."""
    r = subprocess.run(["spm_export_vocab", f"--model={model}", "--output_format=vocab"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, None
    pieces = [ln.split("\t")[0] for ln in r.stdout.splitlines()]
    byte_ids = {i for i, p in enumerate(pieces) if len(p) == 6 and p.startswith("<0x")}
    unk_ids = {i for i, p in enumerate(pieces) if p == "<unk>"}
    return byte_ids, unk_ids


def compression(ids_path, heldout, model):
    """(c) for one id file, line-aligned with the held-out text."""
    text = Path(heldout).read_text(encoding="utf-8")
    hangul = sum(1 for c in text if "\uac00" <= c <= "\ud7a3")
    nbytes = len(text.encode("utf-8")) - text.count("\n")
    ids = [int(t) for t in Path(ids_path).read_text().split()]
    byte_ids, unk_ids = piece_kinds(model)
    out = {"tokens": len(ids), "hangul_per_token": round(hangul / max(len(ids), 1), 4),
           "bytes_per_token": round(nbytes / max(len(ids), 1), 4)}
    if byte_ids is not None:
        out["byte_fallback_rate"] = round(sum(i in byte_ids for i in ids) / max(len(ids), 1), 6)
        out["unk_rate"] = round(sum(i in unk_ids for i in ids) / max(len(ids), 1), 6)
    return out


def same_lines(path_a, path_b):
    """Share of lines that are identical (after stripping) in two line-aligned files."""
    la = Path(path_a).read_text(encoding="utf-8", errors="replace").splitlines()
    lb = Path(path_b).read_text(encoding="utf-8", errors="replace").splitlines()
    if len(la) != len(lb):
        return {"error": f"{len(la)} vs {len(lb)} lines"}
    same = sum(x.strip() == y.strip() for x, y in zip(la, lb))
    return {"lines": len(la), "identical": same, "pct": round(100.0 * same / max(len(la), 1), 3)}


def decode_cmd(name, model, a):
    """The decode command for one model (stdin ids -> lines)."""
    if name == "ours":
        return [a.ssiat, "tokenizer", "decode", "--tokenizer", str(Path(model).parent)]
    return ["spm_decode", f"--model={model}", "--input_format=id"]


def encode_all(a, work, models, have_ours):
    """(b), (c), (d) for every trained model."""
    heldout = a.heldout
    big = work / "heldout_x{}.txt".format(a.reps)
    if not big.is_file():
        data = Path(heldout).read_bytes()
        big.write_bytes(data * a.reps)
    enc, comp, agree = {}, {}, {}
    for name, m in models.items():
        if "error" in m:
            continue
        model = m["model"]
        ids = work / f"{name}.ids"
        r = run(encode_cmd(name, model, a, a.threads_list[-1]), stdin=heldout, stdout=ids)
        if r["rc"] != 0:
            enc[name] = {"error": f"encode rc {r['rc']}"}
            continue
        comp[name] = compression(ids, heldout, model)
        threads = a.threads_list if name == "ours" else [1]
        enc[name] = {}
        for t in threads:
            print(f"encode: {name} threads={t}", flush=True)
            enc[name][f"threads_{t}"] = throughput(encode_cmd(name, model, a, t), heldout, big,
                                                   a.reps, a.repeats)
        dec = work / f"{name}.decoded"
        if run(decode_cmd(name, model, a), stdin=ids, stdout=dec)["rc"] == 0:
            agree[f"{name}_decode_roundtrip"] = same_lines(dec, heldout)
    if have_ours and "ours" in comp:
        spm_ids = work / "spm_with_ours_model.ids"
        ours_model = models["ours"]["model"]
        r = run(encode_cmd("spm", ours_model, a, 1), stdin=heldout, stdout=spm_ids)
        if r["rc"] == 0:
            agree["spm_encode_ours_model_vs_ours"] = same_lines(spm_ids, work / "ours.ids")
            print("encode: spm_encode with ours' tokenizer.model", flush=True)
            enc["spm_with_ours_model"] = {"threads_1": throughput(
                encode_cmd("spm", ours_model, a, 1), heldout, big, a.reps, a.repeats)}
        else:
            agree["spm_encode_ours_model_vs_ours"] = {"error": f"spm_encode rc {r['rc']}"}
    return enc, comp, agree


def ours_stats(a, models):
    """`ssiat tokenizer stats --json` on the held-out text, if it works."""
    if "ours" not in models or "error" in models["ours"]:
        return None
    r = subprocess.run([a.ssiat, "tokenizer", "stats", "--tokenizer",
                        str(Path(models["ours"]["model"]).parent), "--input", str(a.heldout),
                        "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-300:]}
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"raw": r.stdout.strip()[-1000:]}


def in_process_encode(a, models):
    """build/bench_encode: our encoder vs libsentencepiece on our tokenizer.model, one process."""
    exe = Path(a.ssiat).parent / "bench_encode"
    if "ours" not in models or "error" in models["ours"] or not exe.exists():
        return None
    r = subprocess.run([str(exe), str(Path(models["ours"]["model"]).parent), str(a.heldout), "3"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip()[-300:]}
    return json.loads(r.stdout)


def ratio(x, y):
    return round(x / y, 3) if x and y else None


def table(res):
    """The printed summary; ratios are ours / spm BPE unless stated."""
    tr, enc, comp = res["train"], res["encode"], res["compression"]
    rows = [("model", "train s", "train CPU s", "peak RSS MB", "others CPUs", "enc MB/s (t)",
             "Hangul/tok", "bytes/tok")]
    for name in ["ours", "spm_bpe", "spm_unigram"]:
        if name not in tr:
            continue
        t = tr[name]
        e = enc.get(name, {})
        speeds = ", ".join(f"{v.get('mb_per_s')} ({k.split('_')[1]})" for k, v in e.items()
                           if isinstance(v, dict))
        c = comp.get(name, {})
        rows.append((name, t.get("wall_s") if "error" not in t else "FAILED", t.get("cpu_s"),
                     t.get("peak_rss_mb"), t.get("others_cpus", "-"), speeds or "-", c.get("hangul_per_token", "-"),
                     c.get("bytes_per_token", "-")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in rows]
    if res.get("ratios"):
        lines.append("ratios (ours vs spm BPE): " + ", ".join(
            f"{k}={v}" for k, v in res["ratios"].items()))
    for k, v in res.get("agreement", {}).items():
        lines.append(f"{k}: {v}")
    ip = res.get("in_process")
    if ip and "error" not in ip:
        for k in sorted(x for x in ip if x.startswith("threads_")):
            v = ip[k]
            lines.append(f"in-process encode {k}: ssiat {v['ssiat_mb_s']:.1f} MB/s vs libsentencepiece "
                         f"{v['spm_mb_s']:.1f} MB/s = {v['ratio']:.2f}x, identical lines {v['identical_lines']}")
    elif ip:
        lines.append(f"in-process encode: {ip['error']}")
    return "\n".join(lines)


def ratios(res, threads_list):
    """ours vs spm BPE: train speedup (>= 5 wanted), RSS ratio (<= 1), encode speedup (>= 2)."""
    tr, enc, comp = res["train"], res["encode"], res["compression"]
    if "ours" not in tr or "spm_bpe" not in tr:
        return {}
    out = {"train_speedup": ratio(tr["spm_bpe"].get("wall_s"), tr["ours"].get("wall_s")),
           "train_rss_ratio": ratio(tr["ours"].get("peak_rss_mb"), tr["spm_bpe"].get("peak_rss_mb"))}
    spm = enc.get("spm_bpe", {}).get("threads_1", {}).get("mb_per_s")
    for t in threads_list:
        ours = enc.get("ours", {}).get(f"threads_{t}", {}).get("mb_per_s")
        out[f"encode_speedup_t{t}"] = ratio(ours, spm)
    if "ours" in comp and "spm_bpe" in comp:
        out["hangul_per_token_ratio"] = ratio(comp["ours"]["hangul_per_token"],
                                              comp["spm_bpe"]["hangul_per_token"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--heldout", type=Path, required=True)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ssiat", default=os.environ.get("SSIAT_BIN", "build/ssiat"))
    ap.add_argument("--work", type=Path, default=Path("runs/bench-tokenizer"))
    ap.add_argument("--json", type=Path, default=None, help="default WORK/result.json")
    ap.add_argument("--reps", type=int, default=5, help="held-out copies for throughput")
    ap.add_argument("--repeats", type=int, default=3, help="timing runs; the best is kept")
    ap.add_argument("--no-unigram", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="reuse the models in WORK")
    a = ap.parse_args()
    a.threads_list = sorted({1, a.threads})
    for tool in ["spm_train", "spm_encode", "spm_decode", "spm_export_vocab"]:
        if not shutil.which(tool):
            sys.exit(f"bench_tokenizer: {tool} not found (apt-get install sentencepiece)")
    a.work.mkdir(parents=True, exist_ok=True)
    have_ours = ssiat_has_tokenizer(a.ssiat)
    if not have_ours:
        print(f"ssiat tokenizer not available ({a.ssiat}); measuring SentencePiece only",
              flush=True)
    res = {"train_file": str(a.train), "train_mb": round(a.train.stat().st_size / 1e6, 2),
           "heldout_file": str(a.heldout), "heldout_mb": round(a.heldout.stat().st_size / 1e6, 2),
           "vocab": a.vocab, "threads": a.threads, "ssiat": a.ssiat, "ssiat_tokenizer": have_ours,
           "cpu": cpu_model(), "nproc": os.cpu_count(), "spm": spm_version(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": os.getloadavg()}
    if a.skip_train:
        res["train"] = json.loads((a.work / "train.json").read_text())
    else:
        res["train"] = train_all(a, a.work, have_ours)
        (a.work / "train.json").write_text(json.dumps(res["train"], indent=1))
    res["encode"], res["compression"], res["agreement"] = encode_all(a, a.work, res["train"],
                                                                      have_ours)
    res["ours_stats"] = ours_stats(a, res["train"])
    res["in_process"] = in_process_encode(a, res["train"])
    res["ratios"] = ratios(res, a.threads_list)
    res["load_after"] = os.getloadavg()
    out = a.json or a.work / "result.json"
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False))
    print(table(res))
    print(f"wrote {out}")


def cpu_model():
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def spm_version():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "sentencepiece"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


if __name__ == "__main__":
    main()
