"""Outside referee for `ssiat export --format hf` (issue 11): loads the exported directory with
Hugging Face transformers (CPU, float32) and reports, as one JSON line on stdout:
  ids        AutoTokenizer(DIR).encode(PROMPT) (no special tokens added by our tokenizer.json)
  max_abs    max |logits_hf - logits_ssiat| over every position, logits_ssiat from LOGITS.npy
             (`ssiat logits`), when --logits is given
  greedy     model.generate(ids, do_sample=False, max_new_tokens=N) ids after the prompt, when
             --greedy N is given (N > 0)
Usage: python3 hf_referee.py DIR --prompt TEXT [--logits FILE.npy] [--greedy N]
Exit 0 with the JSON, or 2 with a line on stderr if transformers/torch are missing.
"""

import argparse
import json
import sys

try:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as e:  # the C++ test skips with this reason
    print(f"missing Python package: {e.name}", file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--logits")
    ap.add_argument("--greedy", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(a.dir)
    model = AutoModelForCausalLM.from_pretrained(a.dir, torch_dtype=torch.float32)
    model.eval()
    ids = tok.encode(a.prompt, add_special_tokens=True)
    out = {"ids": ids}
    x = torch.tensor([ids], dtype=torch.long)
    if a.logits:
        ours = np.load(a.logits)
        with torch.no_grad():
            theirs = model(x).logits[0].float().numpy()
        if ours.shape != theirs.shape:
            out["shape_mismatch"] = [list(ours.shape), list(theirs.shape)]
        else:
            out["max_abs"] = float(np.max(np.abs(ours - theirs)))
    if a.greedy > 0:
        with torch.no_grad():
            g = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=a.greedy,
                               eos_token_id=None, pad_token_id=tok.eos_token_id)
        out["greedy"] = g[0, len(ids):].tolist()
    print(json.dumps(out))


main()
