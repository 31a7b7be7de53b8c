// `ssiat export RUN_DIR|CHECKPOINT --format gguf --out FILE.gguf` (issue 11): one GGUF v3 file
// for llama.cpp with the model's parameters (F32, never the optimizer moments) and our
// SentencePiece-style BPE vocabulary.
//
// GGUF v3 (ggml's docs/gguf.md): "GGUF" u32 version 3, u64 tensor count, u64 key-value count;
// each key a u64-length string with a u32 value type and the value (strings u64-length; arrays a
// u32 element type, a u64 count and the elements); each tensor info its name, u32 n_dims, the
// dimensions innermost first (a row-major (rows, cols) matrix is (cols, rows)), u32 type (0: F32)
// and u64 offset from the start of the data; the data starts at the next multiple of 32 bytes
// (general.alignment), each tensor at a multiple of 32 after it.
// Keys: general.architecture "llama", general.name, general.file_type 0 (all F32), llama.*
// (context_length, embedding_length, block_count, feed_forward_length, rope.dimension_count,
// rope.freq_base, attention.head_count, attention.head_count_kv,
// attention.layer_norm_rms_epsilon, vocab_size), tokenizer.ggml.model "llama" (SentencePiece),
// tokens, scores, token_type (SentencePiece's piece types), bos/eos/unknown (and padding) ids,
// add_bos_token false, add_eos_token false, add_space_prefix (the normalizer's dummy prefix).
// Tensors under llama.cpp's names (token_embd, blk.N.attn_norm|attn_q|attn_k|attn_v|attn_output|
// ffn_norm|ffn_gate|ffn_up|ffn_down, output_norm, output; no output when tied). llama.cpp rotates
// adjacent pairs (x[2j], x[2j+1]) where our RoPE pairs x[j] with x[j + HS/2] (kernels/rope.h), so
// the rows of q and k are permuted within each head: GGUF row 2j + s = our row s·HS/2 + j (the
// permutation llama.cpp's convert_hf_to_gguf.py applies to Hugging Face Llama weights).
// Only a BPE tokenizer can be exported (ConfigError for the byte tokenizer). Memory: one tensor
// at a time. Written to a temporary file beside FILE and renamed into place; FILE must not exist.
#pragma once

#include <cstdint>
#include <filesystem>

#include "core/export_hf.h"

namespace ssiat {

// Rows of a (heads·HS, cols) q or k matrix in llama.cpp's RoPE order (above); HS even.
void permute_rope_rows_for_gguf(float* dst, const float* src, int64_t heads, int64_t head_size, int64_t cols);

ExportResult export_gguf(const std::filesystem::path& source, const std::filesystem::path& out, bool progress);

}  // namespace ssiat
