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
model is built). `--tiny` replaces the recipe by a 2-layer model for a CPU smoke run in seconds;
`--parity` (with --tiny, fp32) also checks this model's loss and gradients against
tools/bench/torch_llama.py's (the CPU peer, itself checked against transformers' Llama).

Model (Hugging Face LlamaForCausalLM semantics, the same parameter names): embed_tokens ->
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
    """The model's modules (built on demand: model_flops and the table in run.sh need no torch)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    has_rms_norm = hasattr(F, "rms_norm")

    class RMSNorm(nn.Module):
        """y = x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019; HF LlamaRMSNorm)."""

        def __init__(self, dim, eps):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim))
            self.eps = eps

        def forward(self, x):  # (..., C)
            if has_rms_norm:
                return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rotate_half(x):  # (..., HS): [x1, x2] -> [-x2, x1]
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    class Attention(nn.Module):
        def __init__(self, cfg, gqa_native):
            super().__init__()
            c, nh, nkv = cfg["d_model"], cfg["n_head"], cfg["n_kv_head"]
            self.nh, self.nkv, self.hs = nh, nkv, c // nh
            self.gqa_native = gqa_native
            self.q_proj = nn.Linear(c, nh * self.hs, bias=False)   # (NH*HS, C)
            self.k_proj = nn.Linear(c, nkv * self.hs, bias=False)  # (NKV*HS, C)
            self.v_proj = nn.Linear(c, nkv * self.hs, bias=False)  # (NKV*HS, C)
            self.o_proj = nn.Linear(nh * self.hs, c, bias=False)   # (C, NH*HS)

        def forward(self, x, cos, sin):  # x (B, T, C); cos, sin (T, HS)
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, self.nh, self.hs).transpose(1, 2)   # (B, NH, T, HS)
            k = self.k_proj(x).view(b, t, self.nkv, self.hs).transpose(1, 2)  # (B, NKV, T, HS)
            v = self.v_proj(x).view(b, t, self.nkv, self.hs).transpose(1, 2)  # (B, NKV, T, HS)
            cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # keep q, k in the autocast dtype
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if self.nkv != self.nh and self.gqa_native:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                if self.nkv != self.nh:  # each kv head serves NH/NKV consecutive query heads
                    k = k.repeat_interleave(self.nh // self.nkv, dim=1)  # (B, NH, T, HS)
                    v = v.repeat_interleave(self.nh // self.nkv, dim=1)
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o_proj(y.transpose(1, 2).reshape(b, t, self.nh * self.hs))  # (B, T, C)

    class Mlp(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            c, f = cfg["d_model"], cfg["d_ff"]
            self.gate_proj = nn.Linear(c, f, bias=False)  # (F, C)
            self.up_proj = nn.Linear(c, f, bias=False)    # (F, C)
            self.down_proj = nn.Linear(f, c, bias=False)  # (C, F)

        def forward(self, x):  # (B, T, C)
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class DecoderLayer(nn.Module):
        def __init__(self, cfg, gqa_native):
            super().__init__()
            self.input_layernorm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
            self.self_attn = Attention(cfg, gqa_native)
            self.post_attention_layernorm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
            self.mlp = Mlp(cfg)

        def forward(self, x, cos, sin):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin)
            return x + self.mlp(self.post_attention_layernorm(x))

    class LlamaModel(nn.Module):
        def __init__(self, cfg, gqa_native):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["d_model"])  # (V, C)
            self.layers = nn.ModuleList(DecoderLayer(cfg, gqa_native) for _ in range(cfg["n_layer"]))
            self.norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
            hs = cfg["d_model"] // cfg["n_head"]
            inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hs, 2, dtype=torch.int64).float() / hs))
            freqs = torch.outer(torch.arange(cfg["max_seq_len"], dtype=torch.float32), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)  # (max_seq_len, HS)
            self.register_buffer("rope_cos", emb.cos(), persistent=False)
            self.register_buffer("rope_sin", emb.sin(), persistent=False)

    class LlamaForCausalLM(nn.Module):
        def __init__(self, cfg, gqa_native):
            super().__init__()
            self.model = LlamaModel(cfg, gqa_native)
            self.lm_head = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False)  # (V, C)
            if cfg["tied_embeddings"]:
                self.lm_head.weight = self.model.embed_tokens.weight
            with torch.no_grad():  # normal(0, init_std) for matrices, ones for norms
                for p in self.parameters():
                    if p.dim() == 2:
                        p.normal_(0.0, cfg["init_std"])

        def forward(self, idx, targets):  # idx, targets (B, T) int64 -> scalar loss
            t = idx.shape[1]
            cos, sin = self.model.rope_cos[:t], self.model.rope_sin[:t]
            x = self.model.embed_tokens(idx)  # (B, T, C), float32 residual stream
            for layer in self.model.layers:
                x = layer(x, cos, sin)
            logits = self.lm_head(self.model.norm(x))  # (B, T, V)
            return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))

    return LlamaForCausalLM


def sdpa_has_gqa():
    import torch
    import torch.nn.functional as F
    try:
        q = torch.zeros(1, 2, 1, 2)
        kv = torch.zeros(1, 1, 1, 2)
        F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
        return True
    except TypeError:
        return False


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


def check_parity(cfg, seed):
    """fp32 CPU: this model and tools/bench/torch_llama.py's give the same loss and gradients."""
    import torch
    sys.path.insert(0, BENCH_DIR)
    import torch_llama
    torch.manual_seed(seed)
    mine = build_model_classes()(cfg, sdpa_has_gqa())
    ref = torch_llama.LlamaForCausalLM(cfg)
    for layer in ref.model.layers:
        layer.self_attn.gqa_native = sdpa_has_gqa()
    missing = ref.load_state_dict(mine.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys, missing
    tokens = torch.randint(0, cfg["vocab_size"], (2, 17), generator=torch.Generator().manual_seed(seed))
    idx, tgt = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    la, lb = mine(idx, tgt), ref(idx, tgt)
    la.backward()
    lb.backward()
    worst = 0.0
    ref_params = dict(ref.named_parameters())
    for name, p in mine.named_parameters():
        q = ref_params[name]
        rel = ((p.grad - q.grad).norm() / q.grad.norm().clamp_min(1e-30)).item()
        worst = max(worst, rel)
    loss_rel = abs(la.item() - lb.item()) / abs(lb.item())
    if loss_rel > 1e-6 or worst > 1e-5:
        raise RuntimeError(f"parity with torch_llama failed: loss rel {loss_rel:.3g}, worst grad rel {worst:.3g}")
    return {"parity_loss_rel": loss_rel, "parity_grad_rel_max": worst}


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
    ap.add_argument("--parity", action="store_true", help="with --tiny: check against tools/bench/torch_llama.py")
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
        extra = {}
        if args.parity:
            if not args.tiny:
                raise ValueError("--parity needs --tiny")
            extra = check_parity(recipe["model"], args.seed)
        modes = ("eager", "compile") if args.mode == "both" else (args.mode,)
        for mode in modes:
            result = run_mode(recipe, mode, args)
            result.update(extra)
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
