"""PyTorch peer of `ssiat bench train-step`: the same Llama model and training step, eager mode.

Contract: `python3 torch_llama.py RECIPE [--set section.key=value ...] --steps N --warmup W
[--threads K]` builds the model described by RECIPE's [model] section, runs W untimed and then N
timed training steps on uniformly random tokens (micro_batch x seq_len from [train]) and prints
ONE JSON line on stdout, the same one ssiat prints:
  {"tokens_per_s": float, "step_ms": float, "peak_rss_mb": float, "params": int, "threads": int}
peak_rss_mb is getrusage(RUSAGE_SELF).ru_maxrss / 1024 (Linux reports KiB), so run it in its own
process; an extra key, import_rss_mb, is the same measure right after `import torch`. Errors end the process with one line on stderr and a non-zero exit.

The model follows Hugging Face LlamaForCausalLM (transformers models/llama/modeling_llama.py):
  x = embed_tokens[idx]                                          # (B, T, C)
  per layer:  h = rmsnorm(x) ; q, k, v = h Wq^T, h Wk^T, h Wv^T  # bias-free
              q, k = rope(q), rope(k)   (rotate_half convention, theta = rope_theta)
              a = causal_sdpa(q, k, v)  (GQA, scale 1/sqrt(HS)) ; x = x + a Wo^T
              h = rmsnorm(x) ; x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
  logits = rmsnorm(x) Wlm^T (Wlm = embed_tokens when tied) ; loss = mean cross-entropy
One step = forward + backward + global grad-norm clip (optim.grad_clip) + AdamW (lr, betas,
eps, weight_decay on 2-D weights only, norms undecayed). This is the fastest idiomatic eager
PyTorch we know (fused SDPA, fused/foreach AdamW, foreach clipping); no torch.compile.
tools/gpu/bench_torch.py trains this same model on a GPU (bf16 autocast, eager and compiled).
"""

import argparse
import json
import math
import os
import resource
import sys
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

HAS_RMS_NORM = hasattr(F, "rms_norm")

# Peak RSS of the bare runtime (interpreter + libtorch), before any model: reported alongside.
IMPORT_RSS_MB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

# Defaults mirror core/recipe.h so a key left out of the recipe means the same on both sides.
MODEL_DEFAULTS = {"n_kv_head": 0, "tied_embeddings": False, "rope_theta": 10000.0,
                  "norm_eps": 1e-5, "init_std": 0.02}
OPTIM_DEFAULTS = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1,
                  "grad_clip": 1.0}


def parse_set_value(text):
    """A --set value in TOML syntax; a bare word is taken as a string (as core/recipe.h says)."""
    try:
        return tomllib.loads("v = " + text)["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_recipe(path, overrides):
    """The recipe as nested dicts with --set overrides applied and defaults filled in."""
    with open(path, "rb") as f:
        recipe = tomllib.load(f)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise ValueError(f"--set {item!r}: expected section.key=value")
        recipe.setdefault(section, {})[name] = parse_set_value(value.strip())
    model = {**MODEL_DEFAULTS, **recipe.get("model", {})}
    if model["n_kv_head"] == 0:
        model["n_kv_head"] = model["n_head"]
    recipe["model"] = model
    recipe["optim"] = {**OPTIM_DEFAULTS, **recipe.get("optim", {})}
    for section, key in (("model", "vocab_size"), ("model", "n_layer"), ("model", "d_model"),
                         ("model", "n_head"), ("model", "d_ff"), ("model", "max_seq_len"),
                         ("train", "micro_batch"), ("train", "seq_len"), ("optim", "lr")):
        if key not in recipe.get(section, {}):
            raise ValueError(f"{path}: missing key {section}.{key}")
    return recipe


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019; HF LlamaRMSNorm)."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):  # (..., C)
        if HAS_RMS_NORM:  # fused (torch >= 2.4)
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(head_dim, seq_len, theta):
    """cos, sin of shape (T, HS) for the HF rotate_half convention (Su et al. 2021, RoFormer)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, HS/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, HS)
    return emb.cos(), emb.sin()


def rotate_half(x):  # (..., HS): [x1, x2] -> [-x2, x1]
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def sdpa_has_gqa():
    """Whether F.scaled_dot_product_attention takes enable_gqa (torch >= 2.5)."""
    try:
        q = torch.zeros(1, 2, 1, 2)
        kv = torch.zeros(1, 1, 1, 2)
        F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
        return True
    except TypeError:
        return False


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, nh, nkv = cfg["d_model"], cfg["n_head"], cfg["n_kv_head"]
        self.nh, self.nkv, self.hs = nh, nkv, c // nh
        self.q_proj = nn.Linear(c, nh * self.hs, bias=False)   # (NH*HS, C)
        self.k_proj = nn.Linear(c, nkv * self.hs, bias=False)  # (NKV*HS, C)
        self.v_proj = nn.Linear(c, nkv * self.hs, bias=False)  # (NKV*HS, C)
        self.o_proj = nn.Linear(nh * self.hs, c, bias=False)   # (C, NH*HS)
        self.gqa_native = False

    def forward(self, x, cos, sin):  # x (B, T, C); cos, sin (T, HS)
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.nh, self.hs).transpose(1, 2)   # (B, NH, T, HS)
        k = self.k_proj(x).view(b, t, self.nkv, self.hs).transpose(1, 2)  # (B, NKV, T, HS)
        v = self.v_proj(x).view(b, t, self.nkv, self.hs).transpose(1, 2)  # (B, NKV, T, HS)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)  # under autocast q, k stay bf16 (no-op in f32)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.nkv != self.nh and self.gqa_native:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            if self.nkv != self.nh:  # each kv head serves NH/NKV consecutive query heads
                k = k.repeat_interleave(self.nh // self.nkv, dim=1)  # (B, NH, T, HS)
                v = v.repeat_interleave(self.nh // self.nkv, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(HS)
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
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        self.mlp = Mlp(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """Parameters carry the HF names (model.layers.0.self_attn.q_proj.weight, ..., lm_head.weight)."""

    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["d_model"])  # (V, C)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["n_layer"]))
        self.norm = RMSNorm(cfg["d_model"], cfg["norm_eps"])
        cos, sin = rope_tables(cfg["d_model"] // cfg["n_head"], cfg["max_seq_len"],
                               cfg["rope_theta"])
        self.register_buffer("rope_cos", cos, persistent=False)  # (max_seq_len, HS)
        self.register_buffer("rope_sin", sin, persistent=False)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg["d_model"], cfg["vocab_size"], bias=False)  # (V, C)
        if cfg["tied_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight
        with torch.no_grad():  # normal(0, init_std) for matrices, ones for norms (speed-neutral)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    p.normal_(0.0, cfg["init_std"])

    def forward(self, idx, targets):  # idx, targets (B, T) int64 -> scalar loss
        t = idx.shape[1]
        cos, sin = self.model.rope_cos[:t], self.model.rope_sin[:t]
        x = self.model.embed_tokens(idx)  # (B, T, C)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))  # (B, T, V)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets.view(-1))  # f32 under autocast


def make_optimizer(model, optim):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": optim["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=optim["lr"], betas=(optim["beta1"], optim["beta2"]), eps=optim["eps"])
    try:  # fused CPU AdamW exists from torch 2.4 on; foreach is the fallback
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, foreach=True, **kwargs)


def train_step(model, opt, params, idx, targets, grad_clip):
    loss = model(idx, targets)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def run(recipe, steps, warmup, threads, seed):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg, train, optim = recipe["model"], recipe["train"], recipe["optim"]
    if cfg["d_model"] % cfg["n_head"] or cfg["n_head"] % cfg["n_kv_head"]:
        raise ValueError("d_model must divide by n_head and n_head by n_kv_head")
    if train["seq_len"] > cfg["max_seq_len"]:
        raise ValueError("train.seq_len exceeds model.max_seq_len")
    model = LlamaForCausalLM(cfg)
    gqa_native = sdpa_has_gqa()
    for layer in model.model.layers:
        layer.self_attn.gqa_native = gqa_native
    params = list(model.parameters())  # shared (tied) tensors appear once
    n_params = sum(p.numel() for p in params)
    opt = make_optimizer(model, optim)
    b, t, v = train["micro_batch"], train["seq_len"], cfg["vocab_size"]
    gen = torch.Generator().manual_seed(seed)
    batches = []  # two fixed random batches, alternated: (idx, targets), each (B, T) int64
    for _ in range(2):
        tokens = torch.randint(0, v, (b, t + 1), generator=gen)
        batches.append((tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()))

    def step(i):
        idx, targets = batches[i % 2]
        return train_step(model, opt, params, idx, targets, optim["grad_clip"])

    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    loss = None
    for i in range(steps):
        loss = step(i)
    loss_value = loss.item() if loss is not None else float("nan")  # forces completion
    elapsed = time.perf_counter() - start
    if not math.isfinite(loss_value) and steps > 0:
        raise RuntimeError(f"non-finite loss {loss_value}")
    return {
        "tokens_per_s": b * t * steps / elapsed if steps > 0 else 0.0,
        "step_ms": 1000.0 * elapsed / steps if steps > 0 else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "params": n_params,
        "threads": torch.get_num_threads(),
        "import_rss_mb": IMPORT_RSS_MB,
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count())
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("need --steps >= 1, --warmup >= 0, --threads >= 1")
    try:
        recipe = load_recipe(args.recipe, args.overrides)
        result = run(recipe, args.steps, args.warmup, args.threads, args.seed)
    except (OSError, ValueError, KeyError, RuntimeError, tomllib.TOMLDecodeError) as e:
        print(f"torch_llama: {args.recipe}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
