"""Outside referees for `ssiat export --format gguf` (issue 11), one JSON line on stdout.

  python3 gguf_referee.py FILE.gguf --hf DIR
      reads FILE with the `gguf` package's GGUFReader and compares it with the Hugging Face
      export DIR of the same checkpoint (model.safetensors, tokenizer.json via `tokenizers`):
      "tensors" (count), "max_abs" (largest |difference| after undoing llama.cpp's q/k row order,
      expected 0), "unmatched" (names without a partner), "tokens_equal" (the vocabulary, in id
      order), "metadata" (a few llama.* keys)
  python3 gguf_referee.py FILE.gguf --llama --prompt TEXT [--logits FILE.npy] [--greedy N]
      runs the file in llama.cpp (the `llama_cpp` package): "ids" (its tokenization, no BOS),
      "max_abs" against `ssiat logits` (every position), "greedy" (N argmax tokens)
Exit 2 with a line on stderr when a package is missing (the C++ test skips).
"""

import argparse
import importlib
import json
import sys


def need(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        print(f"missing Python package: {name}", file=sys.stderr)
        sys.exit(2)


def hf_name(n):
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if n in fixed:
        return fixed[n]
    layer = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    _, i, part, _ = n.split(".")
    return f"model.layers.{i}.{layer[part]}.weight"


def compare_with_hf(path, hf):
    np = need("numpy")
    gguf = need("gguf")
    st = need("safetensors.numpy")
    tokenizers = need("tokenizers")
    r = gguf.GGUFReader(path)
    field = lambda k: r.fields[k].parts[r.fields[k].data[0]].tolist()
    heads = field("llama.attention.head_count")[0]
    kv = field("llama.attention.head_count_kv")[0]
    ours = st.load_file(f"{hf}/model.safetensors")
    out = {"tensors": len(r.tensors), "max_abs": 0.0, "unmatched": []}
    for t in r.tensors:
        name = hf_name(t.name)
        if name not in ours:
            out["unmatched"].append(t.name)
            continue
        w = np.array(t.data, dtype=np.float32).reshape(ours[name].shape)
        if t.name.endswith("attn_q.weight") or t.name.endswith("attn_k.weight"):
            h = heads if "attn_q" in t.name else kv
            rows, cols = w.shape
            # GGUF row 2j + s holds our row s*HS/2 + j: undo it.
            w = w.reshape(h, rows // h // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)
        out["max_abs"] = max(out["max_abs"], float(np.max(np.abs(w - ours[name]))))
        del ours[name]
    out["unmatched"] += sorted(ours)
    tok = tokenizers.Tokenizer.from_file(f"{hf}/tokenizer.json")
    pieces = [bytes(r.fields["tokenizer.ggml.tokens"].parts[i]).decode() for i in r.fields["tokenizer.ggml.tokens"].data]
    out["tokens_equal"] = pieces == [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    out["metadata"] = {k: field(k)[0] for k in ("llama.block_count", "llama.embedding_length", "llama.attention.head_count_kv")}
    return out


def run_llama(path, prompt, logits, greedy):
    np = need("numpy")
    llama_cpp = need("llama_cpp")
    # f32 KV cache (llama.cpp defaults to f16, which alone moves the logits by ~1e-3).
    llm = llama_cpp.Llama(model_path=path, logits_all=True, n_ctx=0, n_threads=2, verbose=False, type_k=0, type_v=0)
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=False)
    out = {"ids": ids}
    llm.eval(ids)
    if logits:
        ours = np.load(logits)
        theirs = np.array(llm.scores[: len(ids)], dtype=np.float32)
        out["max_abs"] = float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else None
    gen = []
    for _ in range(greedy):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        gen.append(nxt)
        llm.eval([nxt])
    out["greedy"] = gen
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--hf")
    ap.add_argument("--llama", action="store_true")
    ap.add_argument("--prompt", default="")
    ap.add_argument("--logits")
    ap.add_argument("--greedy", type=int, default=0)
    a = ap.parse_args()
    res = compare_with_hf(a.gguf, a.hf) if a.hf else run_llama(a.gguf, a.prompt, a.logits, a.greedy)
    print(json.dumps(res))


main()
