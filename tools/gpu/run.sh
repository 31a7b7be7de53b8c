#!/usr/bin/env bash
# The GPU run (tools/gpu/README.md): runs THERE, on the device machine, over the .gpu/ that
# tools/gpu/pack.sh made here. Within SSIAT_GPU_BUDGET_S seconds (default 480; every step has its
# own `timeout`, cut to what is left), in this order:
#   facts      GPU name/driver, nvcc, python/torch, where libcublasLt (and the other NVIDIA
#              libraries the build needs) come from: CUDA toolkit dirs, then PyTorch's nvidia/*/lib
#   unpack     .gpu/MANIFEST -> $SSIAT_GPU_UNPACK (default /tmp/ssiat-gpu), sha256-checked; ldd
#              must resolve every library of bin/ssiat (lib/compat added only if needed). If it
#              cannot: a build there when nvcc+cmake+ninja and our Debian dev headers exist, else
#              "carried build unusable: <lib>" and the PyTorch benchmarks alone
#   test_cuda  .gpu/bin/test_cuda --gtest_brief=1 (pass/fail/skip counts); test_kernels filtered
#              to CUDA tests (SSIAT_GPU_KERNELS_FILTER)
#   bench      per recipe (SSIAT_GPU_RECIPES, default "gpu-125m gpu-1b"): `ssiat bench train-step`
#              with train.device=cuda, train.precision=bf16; tools/gpu/bench_torch.py eager and
#              torch.compile; same B, T, steps (SSIAT_GPU_STEPS=10, SSIAT_GPU_WARMUP=3)
#   smoke      `ssiat train` of ko-tiny-byte on .gpu/data for 20 steps on the CPU and on CUDA
# and prints one table last (also $OUT/gpu_results.md, with run.log and results.jsonl beside it).
# Steps named in SSIAT_GPU_SKIP (test_cuda test_kernels ssiat eager compile smoke) are skipped.
# SSIAT_GPU_RECIPES may also hold .toml paths; SSIAT_GPU_SSIAT_SETS (the --set list given to ssiat,
# default "train.device=cuda train.precision=bf16") and SSIAT_GPU_TORCH_DEVICE (default cuda)
# exist for dry runs of this script on a CPU machine with a fake nvidia-smi.
# `bash tools/gpu/run.sh --check-pack` does the unpack and ldd steps only, GPU or not (use it here).
# Without a GPU (and without --check-pack) it says so and exits 77.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
check_only=0
[ "${1:-}" = "--check-pack" ] && check_only=1

if [ "$check_only" = 0 ] && ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }; then
  echo "run.sh: no NVIDIA GPU here (nvidia-smi missing or lists no GPU): this script runs on the GPU machine through the device tool (tools/gpu/README.md); 'bash tools/gpu/run.sh --check-pack' checks .gpu/ here. Exit 77 (skipped)."
  exit 77
fi

gpu_dir="$root/.gpu"
unp="${SSIAT_GPU_UNPACK:-/tmp/ssiat-gpu}"
budget="${SSIAT_GPU_BUDGET_S:-480}"
steps="${SSIAT_GPU_STEPS:-10}"
warmup="${SSIAT_GPU_WARMUP:-3}"
recipes="${SSIAT_GPU_RECIPES:-gpu-125m gpu-1b}"
skip=" ${SSIAT_GPU_SKIP:-} "
kfilter="${SSIAT_GPU_KERNELS_FILTER:-*Cuda*:*CUDA*:*cuda*:*Gpu*:*GPU*}"
compile_scope="${SSIAT_GPU_COMPILE_SCOPE:-model}"
ssiat_sets="${SSIAT_GPU_SSIAT_SETS-train.device=cuda train.precision=bf16}"
torch_device="${SSIAT_GPU_TORCH_DEVICE:-cuda}"
work="$(mktemp -d /tmp/ssiat-gpu-run.XXXXXX)"
trap 'rm -rf "$work"' EXIT
res="$work/results.jsonl"
: >"$res"
if [ -n "${OUT:-}" ] && [ "$check_only" = 0 ]; then
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/run.log") 2>&1
  tee_pid=$!
fi
export PYTHONUNBUFFERED=1

# ---- helper (python3: records, unpacking, the table) -------------------------------------------
helper="$work/gpu_helper.py"
cat >"$helper" <<'PY'
import hashlib, json, os, re, subprocess, sys, tomllib
res = os.environ["SSIAT_GPU_RES"]
root = os.environ["SSIAT_GPU_ROOT"]

def rec(obj):
    with open(res, "a") as f:
        f.write(json.dumps(obj) + "\n")

def last_json(path, key):
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if key in obj:
                return obj
    return None

def first_error(path):
    try:
        lines = [l.strip() for l in open(path, errors="replace") if l.strip()]
    except OSError:
        return ""
    for l in lines:
        if re.search(r"error|Error|unknown|not found|failed|what\(\)|Traceback", l):
            return l[:200]
    return lines[-1][:200] if lines else ""

def unpack(gpu_dir, dest):
    """MANIFEST -> dest, decompressed and sha256-checked; prints nothing on success."""
    bad = []
    for line in open(os.path.join(gpu_dir, "MANIFEST")):
        if line.startswith("#") or not line.strip():
            continue
        rel, stored, sha, size = line.rstrip("\n").split("\t")
        out = os.path.join(dest, rel)
        if os.path.exists(out) and hashlib.sha256(open(out, "rb").read()).hexdigest() == sha:
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        src = os.path.join(gpu_dir, stored)
        if stored.endswith(".xz"):
            try:
                import lzma
                data = lzma.open(src).read()
            except ImportError:  # a python3 built without liblzma
                data = subprocess.run(["xz", "-dc", src], check=True, capture_output=True).stdout
        elif stored.endswith(".zst"):
            try:
                data = subprocess.run(["zstd", "-dc", src], check=True, capture_output=True).stdout
            except (OSError, subprocess.CalledProcessError):
                import zstandard  # last resort
                data = zstandard.ZstdDecompressor().decompressobj().decompress(open(src, "rb").read())
        else:
            data = open(src, "rb").read()
        if hashlib.sha256(data).hexdigest() != sha:
            bad.append(rel)
            continue
        with open(out + ".tmp", "wb") as f:
            f.write(data)
        os.replace(out + ".tmp", out)
        if rel.startswith("bin/"):
            os.chmod(out, 0o755)
    if bad:
        print("sha256 mismatch: " + " ".join(bad))
        sys.exit(1)

def load_model(recipe):
    with open(recipe, "rb") as f:
        r = tomllib.load(f)
    m = dict(r["model"])
    m.setdefault("tied_embeddings", False)
    if not m.get("n_kv_head"):
        m["n_kv_head"] = m["n_head"]
    return m, r.get("train", {})

def bench(model, framework, mode, status, log, recipe):
    obj = {"kind": "bench", "model": model, "framework": framework, "mode": mode, "status": status}
    j = last_json(log, "tokens_per_s")
    if j:
        obj.update({k: v for k, v in j.items() if k not in ("mode", "framework", "status")})
    elif status == "ok":
        obj["status"] = "no JSON line"
    if obj["status"] != "ok":
        obj["note"] = first_error(log)
    rec(obj)
    print(json.dumps(obj))

def gtest(name, status, log):
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    def count(tag):
        m = re.search(r"\[\s*" + tag + r"\s*\]\s+(\d+) tests?", text)
        return int(m.group(1)) if m else 0
    ran = re.search(r"\[=+\]\s+(\d+) tests? from \d+ test (?:suites?|cases?) ran", text)
    failed_names = re.findall(r"\[\s*FAILED\s*\]\s+(\S+\.\S+)", text)
    obj = {"kind": "test", "name": name, "status": status, "ran": int(ran.group(1)) if ran else None,
           "passed": count("PASSED"), "failed": count("FAILED"), "skipped": count("SKIPPED"),
           "failed_names": sorted(set(failed_names))[:20]}
    if status != "ok" and not ran:
        obj["note"] = first_error(log)
    rec(obj)
    print(json.dumps(obj))

def fmt(x, spec):
    return "-" if x is None else format(x, spec)

def table(out_md):
    sys.path.insert(0, os.path.join(root, "tools", "gpu"))
    import bench_torch
    rows = [json.loads(l) for l in open(res) if l.strip()]
    facts = {r["key"]: r["value"] for r in rows if r["kind"] == "fact"}
    gpu = facts.get("gpu", "")
    peak = bench_torch.peak_tflops_for(gpu)
    lines = ["# ssiat GPU run", ""]
    for k in ("gpu", "nvcc", "python_torch", "cublasLt", "ld_library_path", "carried_build", "buildinfo"):
        if k in facts:
            lines.append(f"- {k}: {facts[k]}")
    lines.append(f"- MFU: FLOPs/token = 6*matmul_params + 12*L*C*T (core/model.cpp), peak {peak} TFLOP/s dense bf16")
    lines.append("")
    lines.append("| model | framework / mode | tokens/s | MFU | vs torch.compile | step ms | peak mem GB | params | status |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
    benches = [r for r in rows if r["kind"] == "bench"]
    for model in dict.fromkeys(r["model"] for r in benches):
        group = [r for r in benches if r["model"] == model]
        recipe = next((r["recipe_path"] for r in rows if r["kind"] == "recipe" and r["model"] == model), None)
        fpt = None
        if recipe:
            cfg, train = load_model(recipe)
            fpt = bench_torch.model_flops(cfg, train["seq_len"])[2]
        ref = next((r.get("tokens_per_s") for r in group if r["framework"] == "torch"
                    and r["mode"].startswith("compile") and r["status"] == "ok"), None)
        params = {r.get("params") for r in group if r.get("params")}
        for r in group:
            tps = r.get("tokens_per_s") if r["status"] == "ok" else None
            mfu = (tps * fpt / (peak * 1e12)) if (tps and fpt and peak) else (r.get("mfu") if tps else None)
            ratio = (tps / ref) if (tps and ref) else None
            mem = r.get("peak_mem_gb")
            if mem is None and r.get("peak_device_mb"):
                mem = r["peak_device_mb"] / 1024
            status = r["status"] if r["status"] == "ok" or not r.get("note") else f"{r['status']}: {r['note']}"
            if len(params) > 1:
                status += " (params differ between frameworks!)"
            if fpt and r.get("flops_per_token") and abs(r["flops_per_token"] / fpt - 1) > 1e-6:
                status += f" (its flops_per_token {r['flops_per_token']:.4g} != {fpt:.4g})"
            lines.append(f"| {model} | {r['framework']} {r['mode']} | {fmt(tps, ',.0f')} | "
                         f"{fmt(None if mfu is None else 100 * mfu, '.1f')}{'%' if mfu is not None else ''} | "
                         f"{fmt(ratio, '.2f')} | {fmt(r.get('step_ms') if tps else None, '.1f')} | "
                         f"{fmt(mem, '.1f')} | {fmt(r.get('params'), ',')} | {status.replace('|', '/')} |")
    lines.append("")
    smoke_losses = []
    for r in rows:
        if r["kind"] == "test":
            s = (f"- {r['name']}: {r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped"
                 f" (ran {r['ran']}; {r['status']})")
            if r.get("failed_names"):
                s += "; failed: " + " ".join(r["failed_names"])
            if r.get("note"):
                s += "; " + r["note"]
            lines.append(s)
        elif r["kind"] == "smoke":
            lines.append(f"- smoke ({r['what']}): {r['status']}: {r['line']}")
            m = re.search(r"\bloss ([0-9.]+)", r["line"])
            if m:
                smoke_losses.append(float(m.group(1)))
        elif r["kind"] == "skip":
            lines.append(f"- skipped {r['step']}: {r['why']}")
    if len(smoke_losses) == 2:
        lines.append(f"- smoke: |loss(cpu) - loss(cuda)| = {abs(smoke_losses[0] - smoke_losses[1]):.4f}")
    text = "\n".join(lines) + "\n"
    print(text)
    if out_md:
        with open(out_md, "w") as f:
            f.write(text)

cmd = sys.argv[1]
if cmd == "fact":
    rec({"kind": "fact", "key": sys.argv[2], "value": sys.argv[3]})
elif cmd == "skip":
    rec({"kind": "skip", "step": sys.argv[2], "why": sys.argv[3]})
elif cmd == "recipe":
    rec({"kind": "recipe", "model": sys.argv[2], "recipe_path": sys.argv[3]})
elif cmd == "smoke":
    what, status, log = sys.argv[2:5]
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    trained = [l.strip() for l in text.splitlines() if l.startswith("trained ")]
    line = trained[-1] if trained else first_error(log)
    rec({"kind": "smoke", "what": what, "status": status, "line": line})
    print(f"smoke ({what}): {status}: {line}")
elif cmd == "unpack":
    unpack(sys.argv[2], sys.argv[3])
elif cmd == "bench":
    bench(*sys.argv[2:8])
elif cmd == "gtest":
    gtest(*sys.argv[2:5])
elif cmd == "table":
    table(sys.argv[2] if len(sys.argv) > 2 else "")
PY
export SSIAT_GPU_RES="$res" SSIAT_GPU_ROOT="$root"
h() { python3 "$helper" "$@"; }
join() { local IFS=:; echo "$*"; }
nv_path=()

# ---- time budget -------------------------------------------------------------------------------
t0=$SECONDS
left() { echo $((budget - (SECONDS - t0))); }
# step_timeout CAP: seconds for the next step (CAP cut to what is left less 15 s for the table),
# or 0 when under 10 s remain.
step_timeout() {
  local t=$(( $(left) - 15 ))
  [ "$t" -gt "$1" ] && t="$1"
  [ "$t" -lt 10 ] && t=0
  echo "$t"
}
# run_timed NAME CAP LOG CMD...: runs CMD under timeout into LOG (and the console);
# sets $status to ok, timeout (after N s), failed (rc N) or skipped.
run_timed() {
  local name="$1" cap="$2" log="$3"
  shift 3
  if [[ "$skip" == *" $name "* ]]; then status="skipped (SSIAT_GPU_SKIP)"; return; fi
  local t
  t="$(step_timeout "$cap")"
  if [ "$t" = 0 ]; then status="skipped (budget)"; h skip "$name" "budget: $(left) s left"; return; fi
  echo "== $name (timeout ${t}s, $(left) s of budget left): $*"
  local rc
  timeout -k 5 "$t" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  case "$rc" in
    0) status=ok ;;
    124|137) status="timeout after ${t}s" ;;
    *) status="failed (rc $rc)" ;;
  esac
  echo "== $name: $status"
}

# ---- facts -------------------------------------------------------------------------------------
echo "== facts"
if [ "$check_only" = 0 ]; then
  gpu="$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 1)"
  h fact gpu "$gpu"
  echo "gpu: $gpu"
fi
nvcc_bin="$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)"
nvcc_ver="${nvcc_bin:+$(timeout 20 "$nvcc_bin" --version 2>&1 | grep -o 'release [0-9.]*, V[0-9.]*' | head -n 1) ($nvcc_bin)}"
h fact nvcc "${nvcc_ver:-none}"
pyt="$(timeout 60 python3 -c 'import sys, torch; print(sys.version.split()[0], sys.executable, "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -n 1)"
h fact python_torch "$pyt"
echo "nvcc: ${nvcc_ver:-none}"; echo "python/torch: $pyt"

# Where NVIDIA libraries can come from: CUDA toolkit dirs first, then PyTorch's wheels, the driver.
cuda_dirs=()
for d in ${nvcc_bin:+$(dirname "$(dirname "$(readlink -f "$nvcc_bin")")")/lib64} \
         ${nvcc_bin:+$(dirname "$(dirname "$(readlink -f "$nvcc_bin")")")/lib} \
         ${nvcc_bin:+$(dirname "$(dirname "$(readlink -f "$nvcc_bin")")")/targets/x86_64-linux/lib} \
         /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
         /usr/local/cuda-*/targets/x86_64-linux/lib; do
  [ -d "$d" ] && cuda_dirs+=("$(readlink -f "$d")")
done
mapfile -t wheel_dirs < <(timeout 60 python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    for p in list(nvidia.__path__):
        for d in sorted(glob.glob(os.path.join(p, "*", "lib"))):
            print(d)
except ImportError:
    pass
try:
    import torch
    print(os.path.join(os.path.dirname(torch.__file__), "lib"))
except ImportError:
    pass
PY
)
driver_dirs=()
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && driver_dirs+=("$d")
done
search_dirs=()
declare -A seen_dir=()
for d in "${cuda_dirs[@]}" "${wheel_dirs[@]}"; do
  [ -n "$d" ] && [ -z "${seen_dir[$d]:-}" ] && { seen_dir[$d]=1; search_dirs+=("$d"); }
done
cublas_all="$(for d in "${search_dirs[@]}"; do ls "$d"/libcublasLt.so.* 2>/dev/null; done | tr '\n' ' ')"
cublas_ldconfig="$(ldconfig -p 2>/dev/null | grep -o '/[^ ]*libcublasLt.so[.0-9]*' | tr '\n' ' ')"
h fact cublasLt "files: ${cublas_all:-none}; ldconfig: ${cublas_ldconfig:-none}"
echo "libcublasLt: ${cublas_all:-none} (ldconfig: ${cublas_ldconfig:-none})"

# ---- unpack and ldd ----------------------------------------------------------------------------
usable=0
unusable_why=""
bin="$unp/bin"
ldp=""
if [ ! -f "$gpu_dir/MANIFEST" ]; then
  unusable_why="no .gpu/MANIFEST (run tools/gpu/pack.sh here and name .gpu in carry)"
else
  h fact buildinfo "$(grep -E '^(commit|cuda_architectures|nvcc|needs_nvidia|needs_glibc|needs_glibcxx)=' "$gpu_dir/BUILDINFO" | tr '\n' ' ')"
  echo "== unpack .gpu -> $unp"
  if ! um="$(timeout 120 python3 "$helper" unpack "$gpu_dir" "$unp" 2>&1)"; then
    unusable_why="unpack failed: $(echo "$um" | tail -n 1)"
  else
    # The NVIDIA libraries the build needs (BUILDINFO), each from the first dir that has it.
    nv_path=()
    missing_nv=""
    for lib in $(grep '^needs_nvidia=' "$gpu_dir/BUILDINFO" | cut -d= -f2-); do
      [ "$lib" = libcuda.so.1 ] && continue  # the driver's (driver dirs below)
      found=""
      for d in "${search_dirs[@]}"; do
        if [ -e "$d/$lib" ]; then found="$d"; break; fi
      done
      if [ -n "$found" ]; then
        echo "$lib <- $found"
        [[ " ${nv_path[*]} " == *" $found "* ]] || nv_path+=("$found")
      else
        stem="${lib%%.so*}"
        others="$(for d in "${search_dirs[@]}"; do ls "$d/$stem".so.* 2>/dev/null; done | tr '\n' ' ')"
        missing_nv+="$lib (found only: ${others:-nothing}) "
      fi
    done
    base_ldp="$(join "$unp/lib" "${nv_path[@]}" "${driver_dirs[@]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ldp="$base_ldp"
    lddout="$(LD_LIBRARY_PATH="$ldp" ldd "$bin/ssiat" 2>&1)"
    if grep -q "not found" <<<"$lddout" && grep -qE "GLIBCXX|CXXABI|GCC_|libstdc|libgcc_s" <<<"$lddout"; then
      echo "ldd: the system libstdc++/libgcc_s are too old; adding lib/compat"
      ldp="$(join "$unp/lib" "$unp/lib/compat" "${nv_path[@]}" "${driver_dirs[@]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      lddout="$(LD_LIBRARY_PATH="$ldp" ldd "$bin/ssiat" 2>&1)"
    fi
    notfound="$(grep "not found" <<<"$lddout" | sed -E 's/^[[:space:]]+//' | tr '\n' ';')"
    echo "$lddout" | grep -E "=>|not found" | sed 's/^/  /'
    if [ -n "$notfound" ]; then
      unusable_why="ldd: ${notfound}${missing_nv:+ NVIDIA: $missing_nv}"
    elif ! vers="$(LD_LIBRARY_PATH="$ldp" timeout 30 "$bin/ssiat" --version 2>&1)"; then
      unusable_why="ssiat --version failed: $(echo "$vers" | tail -n 1)"
    else
      usable=1
      echo "ssiat: $vers"
    fi
  fi
fi

if [ "$check_only" = 1 ]; then
  if [ "$usable" = 1 ]; then echo "run.sh --check-pack: ok: $bin/ssiat resolves every library (LD_LIBRARY_PATH=$ldp)"; exit 0; fi
  echo "run.sh --check-pack: carried build unusable: $unusable_why"; exit 1
fi

if [ "$usable" = 0 ]; then
  echo "carried build unusable: $unusable_why"
  # Fallback: build here, only if the toolchain and our Debian dev headers exist (rarely).
  hdrs_missing=""
  for f in /usr/include/toml++/toml.h /usr/include/CLI/CLI.hpp /usr/include/nlohmann/json.hpp \
           /usr/include/utf8proc.h /usr/include/sodium.h /usr/include/openssl/sha.h \
           /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h /usr/include/gtest/gtest.h; do
    [ -e "$f" ] || hdrs_missing+="$(basename "$f") "
  done
  [ -e /usr/include/hdf5/serial/hdf5.h ] || [ -e /usr/include/hdf5.h ] || hdrs_missing+="hdf5.h "
  if [ -n "$nvcc_bin" ] && command -v cmake >/dev/null && command -v ninja >/dev/null && [ -z "$hdrs_missing" ]; then
    fb="/tmp/ssiat-build-there"
    run_timed build_there 300 "$work/build.log" bash -c "cmake -S '$root' -B '$fb' -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSIAT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a -DCMAKE_CUDA_COMPILER='$nvcc_bin' >/dev/null && cmake --build '$fb' -j16 --target ssiat test_cuda test_kernels"
    if [ "$status" = ok ] && [ -x "$fb/ssiat" ]; then
      bin="$fb"; usable=1
      ldp="$(join "${nv_path[@]}" "${driver_dirs[@]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      h fact carried_build "unusable ($unusable_why); built there instead"
    fi
  else
    echo "no build there: ${nvcc_bin:+}$( [ -z "$nvcc_bin" ] && echo 'no nvcc; ')$(command -v cmake >/dev/null || echo 'no cmake; ')$(command -v ninja >/dev/null || echo 'no ninja; ')${hdrs_missing:+headers missing: $hdrs_missing}"
  fi
  [ "$usable" = 0 ] && h fact carried_build "carried build unusable: $unusable_why"
else
  h fact carried_build "usable"
  h fact ld_library_path "$ldp"
fi

# The binaries have this machine's source and build paths compiled in (SSIAT_SOURCE_DIR, SSIAT_CLI
# in the tests): point those paths at this copy when they do not exist here.
if [ "$usable" = 1 ] && [ -f "$gpu_dir/BUILDINFO" ]; then
  src_baked="$(grep '^source_dir=' "$gpu_dir/BUILDINFO" | cut -d= -f2-)"
  bld_baked="$(grep '^build_dir=' "$gpu_dir/BUILDINFO" | cut -d= -f2-)"
  if [ -n "$src_baked" ] && [ ! -e "$src_baked" ]; then
    mkdir -p "$(dirname "$src_baked")" && ln -s "$root" "$src_baked" && echo "linked $src_baked -> $root"
  fi
  if [ -n "$bld_baked" ] && [ ! -e "$bld_baked" ] && [ -d "$(dirname "$bld_baked")" ]; then
    ln -s "$bin" "$bld_baked" && echo "linked $bld_baked -> $bin"
  fi
fi

# ---- tests -------------------------------------------------------------------------------------
if [ "$usable" = 1 ]; then
  if [ -x "$bin/test_cuda" ]; then
    run_timed test_cuda 150 "$work/test_cuda.log" env LD_LIBRARY_PATH="$ldp" "$bin/test_cuda" --gtest_brief=1
    [[ "$status" == skipped* ]] || h gtest test_cuda "$status" "$work/test_cuda.log"
  else
    h skip test_cuda "no test_cuda binary in the pack"
  fi
  if [ -x "$bin/test_kernels" ]; then
    run_timed test_kernels 60 "$work/test_kernels.log" env LD_LIBRARY_PATH="$ldp" "$bin/test_kernels" --gtest_brief=1 "--gtest_filter=$kfilter"
    [[ "$status" == skipped* ]] || h gtest "test_kernels ($kfilter)" "$status" "$work/test_kernels.log"
  fi
fi

# ---- benchmarks --------------------------------------------------------------------------------
for name in $recipes; do
  if [[ "$name" == *.toml ]]; then  # a path
    recipe="$name"
    name="$(basename "$name" .toml)"
  else
    recipe="$gpu_dir/recipes/$name.toml"
    [ -f "$recipe" ] || recipe="$root/recipes/$name.toml"
  fi
  if [ ! -f "$recipe" ]; then h skip "bench $name" "no recipe $name.toml"; continue; fi
  h recipe "$name" "$recipe"
  if [ "$usable" = 1 ]; then
    log="$work/ssiat_$name.log"
    sets=()
    for kv in $ssiat_sets; do sets+=(--set "$kv"); done
    run_timed ssiat 180 "$log" env LD_LIBRARY_PATH="$ldp" "$bin/ssiat" bench train-step "$recipe" \
      "${sets[@]}" --steps "$steps" --warmup "$warmup"
    label="$(echo "${ssiat_sets:-recipe as is}" | sed 's/train\.//g')"
    [[ "$status" == skipped* ]] || h bench "$name" ssiat "$label" "$status" "$log" "$recipe"
  else
    h skip "ssiat $name" "carried build unusable"
  fi
  for mode in compile eager; do
    log="$work/torch_${mode}_$name.log"
    cap=90; [ "$mode" = compile ] && cap=200
    run_timed "$mode" "$cap" "$log" python3 "$root/tools/gpu/bench_torch.py" "$recipe" --device "$torch_device" \
      --precision bf16 --mode "$mode" --compile-scope "$compile_scope" --steps "$steps" --warmup "$warmup"
    m="$mode"; [ "$mode" = compile ] && m="compile:$compile_scope"
    [[ "$status" == skipped* ]] || h bench "$name" torch "$m" "$status" "$log" "$recipe"
  done
done

# ---- CUDA training smoke run on real data (CPU vs CUDA, 20 steps) -----------------------------
if [ "$usable" = 1 ] && [ -d "$gpu_dir/data/ko-byte/train" ] && [ -f "$gpu_dir/recipes/ko-tiny-byte.toml" ]; then
  for dev in cpu cuda; do
    rd="$work/smoke_$dev"
    rm -rf "$rd"
    run_timed smoke 60 "$work/smoke_$dev.log" env LD_LIBRARY_PATH="$ldp" "$bin/ssiat" train \
      "$gpu_dir/recipes/ko-tiny-byte.toml" --run-dir "$rd" -q \
      --set "data.train=$gpu_dir/data/ko-byte/train" --set "data.val=$gpu_dir/data/ko-byte/val" \
      --set train.steps=20 --set train.sample_tokens=0 --set train.eval_interval=0 --set train.eval_batches=4 \
      --set schedule.warmup_steps=2 --set "train.device=$dev"
    [[ "$status" == skipped* ]] || h smoke "ko-tiny-byte 20 steps, $dev" "$status" "$work/smoke_$dev.log"
  done
fi

# ---- table -------------------------------------------------------------------------------------
echo "== results ($((SECONDS - t0)) s)"
if [ -n "${OUT:-}" ]; then
  h table "$OUT/gpu_results.md"
  cp "$res" "$OUT/results.jsonl"
  for f in "$work"/test_cuda.log; do [ -f "$f" ] && cp "$f" "$OUT/"; done
else
  h table
fi
if [ -n "${tee_pid:-}" ]; then exec >&- 2>&-; wait "$tee_pid" 2>/dev/null; fi
exit 0
