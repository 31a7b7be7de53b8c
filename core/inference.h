// Using a trained model (issue 11): logits of a prompt, generation with a KV cache, and
// evaluation on held-out text.
//
// logits_of: the model's own forward (Pass::kLogits, core/model.h) over the prompt: f32 logits
// (T, V), row t predicting token t + 1. The reference the export is checked against.
//
// KvDecoder: one token at a time with a cache of every layer's rotated keys and values (the
// standard incremental decoding of a causal transformer), on the model's backend (the CPU, or
// one CUDA GPU with f32 operands), with the model's own kernels through core/ops.h: for position
// p, x = E[token]; per layer h = rmsnorm(x) · w_in; [q|k|v] = W_qkv h written into row p of the
// layer's cache (T_max, QKV) (the training attention's packed layout, kernels/attention.h);
// RoPE at p on that row's q and k (kernels/rope.h); a = attention_decode over rows 0..p (the
// last row of causal attention, kernels/attention_decode.h); x += W_o a; h = rmsnorm(x) · w_post;
// x += W_down swiglu(W_gate|up h); logits = W_lm · rmsnorm(x) · w_final (W_lm = E when tied).
// Each step computes one row, where the model's forward would recompute the whole prefix.
//
// Sampling (per step, from the logits of the last position):
//   temperature 0: greedy (argmax; the lowest id among equal maxima);
//   else p_i ∝ exp((l_i − max l) / temperature) in double; top_k > 0 keeps the k most probable
//   (ties by lower id); top_p < 1 keeps the smallest set, most probable first, whose mass reaches
//   top_p; then u = uniform01 of Philox block (step, 0, 0, 0) of the seed registry's stream
//   "generate" (core/seed_registry.h) picks the first kept token, in that order, whose running
//   mass exceeds u · kept mass. The same seed gives the same tokens.
// Generation stops after max_new_tokens, after the eos id when stop_at_eos (the eos is returned),
// or when the cache holds model.max_seq_len positions.
//
// evaluate_text: documents (paragraphs separated by blank lines, as `data prepare` splits them;
// with lines_are_documents, every non-blank line),
// each encoded and followed by eos, concatenated after one leading eos; every token after the
// first is predicted, in windows of up to seq_len predictions (non-overlapping, each window's
// context starting at its first input). loss = mean NLL (nats) per predicted token; perplexity =
// exp(loss); bits per byte = Σ NLL / ln 2 / Σ UTF-8 bytes of the documents — comparable across
// tokenizers, since the bytes do not depend on how the text was cut. Progress (windows, tokens/s,
// ETA) to stderr when asked.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/model.h"
#include "tokenizer/tokenizer.h"

namespace ssiat {

// (T, V) row-major; ConfigError if ids is empty or longer than model.max_seq_len.
std::vector<float> logits_of(Llama<float>& model, const std::vector<int32_t>& ids);

class KvDecoder {
 public:
  // Decodes with `model`'s weights on its backend; the model must outlive the decoder, and its
  // tensor parallelism must be one rank.
  explicit KvDecoder(Llama<float>& model);
  // Feeds the token at the next position; returns the logits (V, host memory) predicting the one
  // after it.
  const std::vector<float>& step(int32_t token);
  int64_t position() const { return pos_; }
  const ModelConfig& config() const { return cfg_; }
  void reset() { pos_ = 0; }

 private:
  struct LayerAt {  // offsets into the model's flat parameters
    int64_t in_norm, qkv, o, post_norm, gate_up, down;
  };
  Llama<float>& model_;
  const Backend& be_;
  const ModelConfig& cfg_;  // the model's
  int64_t QKV_ = 0;
  std::vector<LayerAt> layers_;
  int64_t wte_ = 0, final_norm_ = 0, lm_head_ = 0;
  Buffer<float> cache_;  // (L, T_max, QKV)
  Buffer<float> cos_, sin_, x_, h_, tmp_, att_, gu_, act_, rstd_, logits_dev_;
  Buffer<int32_t> token_;
  std::vector<float> logits_;
  int64_t pos_ = 0;
};

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0: greedy
  int64_t top_k = 0;         // 0: all
  double top_p = 1.0;        // 1: all
  uint64_t seed = 0;
  bool stop_at_eos = true;
};

// The ids generated after `prompt` (not including it). `on_token` (may be empty) sees each id.
std::vector<int32_t> generate_tokens(KvDecoder& dec, const std::vector<int32_t>& prompt, int32_t eos_id,
                                     const SamplingOptions& opt, const std::function<void(int32_t)>& on_token = {});

// The index picked from `logits` at generation step `step` (exposed for tests).
int32_t sample_token(const std::vector<float>& logits, const SamplingOptions& opt, int64_t step);

struct EvalResult {
  int64_t documents = 0;
  int64_t tokens = 0;  // predicted tokens
  int64_t bytes = 0;   // UTF-8 bytes of the documents
  double nll_sum = 0;  // nats
  double loss() const { return tokens ? nll_sum / static_cast<double>(tokens) : 0; }
  double perplexity() const;
  double bits_per_byte() const;
};

EvalResult evaluate_text(Llama<float>& model, const tokenizer::Tokenizer& tok, const std::string& text, int64_t seq_len,
                         int64_t batch, bool progress, bool lines_are_documents = false);

}  // namespace ssiat
