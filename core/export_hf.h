// `ssiat export RUN_DIR|CHECKPOINT --format hf --out DIR` (issue 11): a Hugging Face
// `LlamaForCausalLM` directory from a checkpoint's parameters (never the optimizer moments).
//
// Files:
//   model.safetensors             the parameters, F32, under their Hugging Face names (our names
//                                 are theirs; our RoPE is their rotate_half convention, so no
//                                 permutation), or, when they exceed `shard_bytes`,
//   model-0000K-of-0000N.safetensors + model.safetensors.index.json
//                                 {"metadata": {"total_size"}, "weight_map": {name: file}}; shards
//                                 cut between tensors in name order.
//                                 safetensors (github.com/huggingface/safetensors, "Format"):
//                                 u64le header length, JSON header {name: {"dtype", "shape",
//                                 "data_offsets"}, "__metadata__": {"format": "pt"}} padded with
//                                 spaces to a multiple of 8, then the tensors' bytes in header order.
//   config.json                   LlamaConfig: sizes, rms_norm_eps, rope_theta, tie_word_embeddings,
//                                 max_position_embeddings, special-token ids, torch_dtype float32
//   generation_config.json        bos/eos ids and max_length
//   tokenizer.model, tokenizer.json, tokenizer_config.json
//                                 our SentencePiece model and Hugging Face tokenizer.json (no <s>
//                                 added, so `AutoTokenizer` gives our ids) and a config naming
//                                 PreTrainedTokenizerFast; only for a BPE tokenizer (the byte
//                                 tokenizer has no Hugging Face form: its files are not written,
//                                 and the result says so)
// Memory: one tensor at a time (the checkpoint is streamed and verified tensor by tensor).
// Everything is written into a temporary sibling directory and renamed into place at the end, so
// a failure leaves no half-written DIR. DIR must not exist or be an empty directory (IoError
// naming it otherwise). Errors: the checkpoint reader's (a missing or corrupted tensor names the
// file and tensor), IoError naming the file for a failed write.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace ssiat {

struct ExportOptions {
  std::filesystem::path out;
  int64_t shard_bytes = 5'000'000'000;  // transformers' default max_shard_size "5GB"
  bool progress = false;                // one stderr line per tensor
};

struct ExportResult {
  std::filesystem::path checkpoint;  // what was exported
  int64_t tensors = 0;
  int64_t bytes = 0;                 // tensor bytes written
  int64_t shards = 0;
  bool tokenizer = false;            // tokenizer files written
};

ExportResult export_hf(const std::filesystem::path& source, const ExportOptions& opt);

}  // namespace ssiat
