"""PyTorch peer of `ssiat bench train-step` on a GPU: the same Llama, bf16 autocast, eager and compiled.

Contract: `python3 bench_torch.py RECIPE [--set section.key=value ...] [--mode eager|compile|both]
[--steps N] [--warmup W] [--device cuda|cpu] [--precision bf16|fp32]` builds the model of
RECIPE's [model] section (parsed with tools/bench/torch_llama.py's load_recipe, so defaults and
--set mean what they mean to ssiat), runs W untimed and N timed training steps on random tokens
(train.micro_batch x train.seq_len) and prints ONE JSON line per mode on stdout:
  {"framework": "torch", "mode", "recipe", "device", "gpu", "precision", "B", "T", "steps",
   "warmup", "params", "matmul_params", "flops_per_token", "tokens_per_s", "step_ms", "mfu",
   "peak_tflops", "peak_mem_gb", "warmup_s", "loss", "sdpa_gqa", "torch"}
`--flops-only` prints {"params", "matmul_params", "flops_per_token"} from the recipe alone (no
model is built). `--tiny` replaces the recipe by a 2-layer model for a CPU smoke run in seconds.

Model: tools/bench/torch_llama.py's, the CPU peer's (Hugging Face LlamaForCausalLM semantics,
the same parameter names): embed_tokens ->
per layer [RMSNorm -> bias-free q/k/v -> RoPE (rotate_half, theta = rope_theta) -> causal
F.scaled_dot_product_attention (GQA via enable_gqa, scale 1/sqrt(HS); flash on Hopper) -> o_proj
-> residual; RMSNorm -> SwiGLU (down(silu(gate x) * up x)) -> residual] -> RMSNorm -> lm_head
(tied to embed_tokens if model.tied_embeddings) -> mean cross-entropy.
Step: forward + backward under torch.autocast(bf16) with float32 master weights, global
grad-norm clip (optim.grad_clip, foreach), AdamW(fused=True; weight decay on 2-D weights only).
compile mode: torch.compile of the whole model (default) or of each decoder layer
(--compile-scope layers: one compiled graph reused by every layer, much shorter compile).

FLOPs per token are ssiat's (core/model.cpp Llama::flops_per_token):
  6 * matmul_params + 12 * n_layer * d_model * T,
matmul_params = every 2-D weight except embed_tokens, plus vocab*d_model once more when tied
(the lm_head product). MFU = tokens/s * flops_per_token / peak, peak = 989.4 TFLOP/s dense bf16
for H100/H200 SXM (--peak-tflops overrides; unknown devices report mfu null).
"""

import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.join(HERE, "..", "bench")

# Dense bf16 peaks by device-name fragment, TFLOP/s (vendor datasheets, without sparsity).
# First match wins: the NVL/PCIe parts before the plain names.
PEAK_TFLOPS = (("H200 NVL", 835.5), ("H100 NVL", 835.5), ("H100 PCIe", 756.0), ("H200", 989.4),
               ("H100", 989.4), ("A100", 312.0))

TINY_RECIPE = {
    "model": {"vocab_size": 512, "n_layer": 2, "d_model": 64, "n_head": 4, "n_kv_head": 2,
              "d_ff": 128, "max_seq_len": 64, "tied_embeddings": False, "rope_theta": 10000.0,
              "norm_eps": 1e-5, "init_std": 0.02},
    "train": {"micro_batch": 2, "seq_len": 32},
    "optim": {"lr": 3e-4, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
              "grad_clip": 1.0},
}


def load_recipe(path, overrides):
    """The recipe as nested dicts, through the CPU peer's loader (same defaults, same --set)."""
    sys.path.insert(0, BENCH_DIR)
    from torch_llama import load_recipe as peer_load  # noqa: E402  (imports torch)
    return peer_load(path, overrides)


def model_flops(cfg, seq_len):
    """(params, matmul_params, flops_per_token) exactly as ssiat counts them."""
    v, c, l = cfg["vocab_size"], cfg["d_model"], cfg["n_layer"]
    nh, f = cfg["n_head"], cfg["d_ff"]
    nkv = cfg.get("n_kv_head") or nh
    hs = c // nh
    per_layer_mm = nh * hs * c + 2 * nkv * hs * c + c * nh * hs + 3 * f * c  # q, k, v, o, gate, up, down
    matmul = l * per_layer_mm + v * c  # + lm_head (its own weight, or the tied embedding)
    params = v * c + l * (per_layer_mm + 2 * c) + c + (0 if cfg.get("tied_embeddings") else v * c)
    return params, matmul, 6.0 * matmul + 12.0 * l * c * seq_len


def peak_tflops_for(name):
    for fragment, peak in PEAK_TFLOPS:
        if fragment in name:
            return peak
    return None


def build_model_classes():
    """A factory (cfg, gqa_native) -> tools/bench/torch_llama.py's LlamaForCausalLM, the CPU peer's
    model (imported on demand: model_flops and the table in run.sh need no torch)."""
    sys.path.insert(0, BENCH_DIR)
    import torch_llama  # noqa: E402

    def make(cfg, gqa_native):
        model = torch_llama.LlamaForCausalLM(cfg)
        for layer in model.model.layers:
            layer.self_attn.gqa_native = gqa_native
        return model

    return make


def sdpa_has_gqa():
    sys.path.insert(0, BENCH_DIR)
    import torch_llama  # noqa: E402
    return torch_llama.sdpa_has_gqa()


def make_optimizer(model, optim, device):
    import torch
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": optim["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=optim["lr"], betas=(optim["beta1"], optim["beta2"]), eps=optim["eps"])
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, foreach=True, **kwargs), "foreach"


def run_mode(recipe, mode, args):
    import torch
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch.cuda.is_available() is False")
    cfg, train, optim = recipe["model"], recipe["train"], recipe["optim"]
    b, t, v = train["micro_batch"], train["seq_len"], cfg["vocab_size"]
    if cfg["d_model"] % cfg["n_head"] or cfg["n_head"] % cfg["n_kv_head"]:
        raise ValueError("d_model must divide by n_head and n_head by n_kv_head")
    if t > cfg["max_seq_len"]:
        raise ValueError("train.seq_len exceeds model.max_seq_len")
    torch.manual_seed(args.seed)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # only fp32 matmuls outside autocast (none here)
        torch.backends.cudnn.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    gqa_native = sdpa_has_gqa()
    with torch.device(device):  # parameters are created (and initialised) on the device
        model = build_model_classes()(cfg, gqa_native)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    mm = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and n != "model.embed_tokens.weight")
    if cfg["tied_embeddings"]:
        mm += v * cfg["d_model"]
    n_expect, mm_expect, fpt = model_flops(cfg, t)
    if (n_params, mm) != (n_expect, mm_expect):
        raise RuntimeError(f"parameter count {n_params}/{mm} != formula {n_expect}/{mm_expect}")
    opt, opt_kind = make_optimizer(model, optim, device)
    fwd = model
    if mode == "compile":
        if args.compile_scope == "layers":
            for layer in model.model.layers:
                layer.compile()
        else:
            fwd = torch.compile(model)
    use_bf16 = args.precision == "bf16"
    gen = torch.Generator().manual_seed(args.seed)
    batches = []  # two fixed random batches, alternated: (idx, targets), each (B, T) int64
    for _ in range(2):
        tokens = torch.randint(0, v, (b, t + 1), generator=gen)
        batches.append((tokens[:, :-1].contiguous().to(device), tokens[:, 1:].contiguous().to(device)))
    clip = optim["grad_clip"]

    def step(i):
        idx, targets = batches[i % 2]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = fwd(idx, targets)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    w0 = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    sync()
    warmup_s = time.perf_counter() - w0
    start = time.perf_counter()
    loss = None
    for i in range(args.steps):
        loss = step(args.warmup + i)
    sync()
    elapsed = time.perf_counter() - start
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise RuntimeError(f"non-finite loss {loss_value}")
    gpu = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = args.peak_tflops if args.peak_tflops else (peak_tflops_for(gpu) if cuda else None)
    tps = b * t * args.steps / elapsed
    return {
        "framework": "torch", "mode": mode if mode == "eager" else f"compile:{args.compile_scope}",
        "recipe": args.recipe_name, "device": device.type, "gpu": gpu, "precision": args.precision,
        "B": b, "T": t, "steps": args.steps, "warmup": args.warmup,
        "params": n_params, "matmul_params": mm, "flops_per_token": fpt,
        "tokens_per_s": tps, "step_ms": 1000.0 * elapsed / args.steps,
        "mfu": (tps * fpt / (peak * 1e12)) if peak else None, "peak_tflops": peak,
        "peak_mem_gb": (torch.cuda.max_memory_allocated(device) / 2**30) if cuda else None,
        "warmup_s": warmup_s, "loss": loss_value, "sdpa_gqa": gqa_native, "adamw": opt_kind,
        "torch": torch.__version__,
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe", nargs="?", help="recipe TOML (not with --tiny)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--mode", choices=("eager", "compile", "both"), default="eager")
    ap.add_argument("--compile-scope", choices=("model", "layers"), default="model")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                    help="default: train.precision of the recipe, else bf16 on cuda and fp32 on cpu")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the device's dense bf16 peak")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tiny", action="store_true", help="built-in 2-layer model (CPU smoke test)")
    ap.add_argument("--flops-only", action="store_true", help="print params and FLOPs per token, build nothing")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        ap.error("need --steps >= 1 and --warmup >= 0")
    if args.tiny == bool(args.recipe):
        ap.error("give a RECIPE or --tiny (not both)")
    try:
        if args.tiny:
            recipe = {k: dict(s) for k, s in TINY_RECIPE.items()}
            args.recipe_name = "tiny"
        else:
            recipe = load_recipe(args.recipe, args.overrides)
            args.recipe_name = os.path.splitext(os.path.basename(args.recipe))[0]
        if args.flops_only:
            p, mm, fpt = model_flops(recipe["model"], recipe["train"]["seq_len"])
            print(json.dumps({"recipe": args.recipe_name, "params": p, "matmul_params": mm,
                              "flops_per_token": fpt}), flush=True)
            return 0
        if args.precision is None:  # the recipe's ("f32" | "bf16" | "auto"), auto as ssiat reads it
            args.precision = {"f32": "fp32", "auto": None}.get(recipe["train"].get("precision"),
                                                               recipe["train"].get("precision"))
            args.precision = args.precision or ("bf16" if args.device.startswith("cuda") else "fp32")
        if args.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision {args.precision!r}: expected bf16 or fp32")
        modes = ("eager", "compile") if args.mode == "both" else (args.mode,)
        for mode in modes:
            result = run_mode(recipe, mode, args)
            print(json.dumps(result), flush=True)
            import gc
            gc.collect()
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    except Exception as e:  # one line, non-zero exit: run.sh records the reason
        print(f"bench_torch: {args.recipe or 'tiny'}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
