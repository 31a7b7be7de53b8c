// Token data: `ssiat data prepare` writes HDF5 token shards plus a manifest; the loader serves
// fixed-length windows in a seeded order that does not depend on the number of ranks.
//
// Prepared directory layout:
//   manifest.json   {"format":"ssiat-tokens/v1","tokenizer":{"name","digest","vocab_size"},
//                    "sources":[{"path","sha256","bytes","documents"}],
//                    "shards":[{"file","sha256","tokens","documents"}], "tokens":N, "documents":D}
//   shard_00000.h5  dataset "tokens" (uint32, 1-D), dataset "doc_offsets" (uint64, D+1: start of
//                   each document in "tokens", then the end); attributes "source_sha256"
//                   (the sources it holds, comma-separated), "tokenizer_digest".
// Documents: text input: paragraphs separated by one or more blank lines; JSONL input: one
// object per line, its "text" field. Each document is followed by the tokenizer's eos id.
//
// Windows: the shards' tokens concatenated in manifest order form one stream S of length L;
// window w (0 <= w < W = (L - 1) / seq_len) is inputs S[w*T, w*T+T), targets S[w*T+1, w*T+T+1).
// Global sample g (0, 1, 2, ...) is window perm_e[g mod W] with epoch e = g / W, where perm_e is
// a Fisher-Yates shuffle driven by Philox (stream "data/order", counter (j, e, 0, 0)), spec in
// docs/data.md. The loader only serves global samples; the trainer does the arithmetic:
// micro-batch a of data-parallel rank r of R with micro-batch B reads global samples
// [pos + (a·R + r)·B, pos + (a·R + r + 1)·B); pos is the global sample count.
//
// Loading: each shard's "tokens" must be uint32, 1-D, with the manifest's count. A contiguous,
// unfiltered little-endian dataset at a defined file offset (what prepare_data writes) is served
// from a read-only MAP_SHARED mapping of the file (its descriptor closed after mmap, unmapped when
// the loader is destroyed), so the loader holds no copy of the corpus; any other layout (chunked,
// compressed, compact, big-endian, empty) is read into memory. A mapped file must not be
// truncated or rewritten while the loader lives (the kernel would fault the reader).
// LoadOptions::verify = true: every shard's SHA-256 is checked against the manifest (IoError
// naming the file) and every token against the manifest's vocab_size (DataError naming the file
// and index) at load. verify = false skips both full passes (e.g. every rank but one of a
// data-parallel run, after that one verified). In both modes fill() checks each token it serves
// against vocab_size (DataError naming the shard file and the token's index in it), so what fill()
// serves always meets the kernels' precondition (ids in [0, V); kernels/embedding.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include "core/philox.h"
#include "core/recipe.h"
#include "tokenizer/tokenizer.h"

namespace ssiat {

enum class InputFormat { kText, kJsonl };

struct PrepareOptions {
  std::vector<std::filesystem::path> inputs;
  InputFormat format = InputFormat::kText;  // chosen per file by extension (.jsonl) if kAuto
  bool auto_format = true;
  int64_t shard_tokens = 1 << 24;  // tokens per shard (documents never split across shards)
  bool progress = false;           // print progress to stderr
  int threads = 0;                 // tokenizer threads (0: all cores); ids do not depend on it
};

struct PrepareResult {
  int64_t tokens = 0;
  int64_t documents = 0;
  int64_t shards = 0;
};

// Tokenises the inputs into out_dir (written to a temporary directory `.<out>.tmp-<pid>` beside it
// and renamed into place; temporaries of out_dir left by dead processes are removed first).
// Inputs are read with checked reads (core/fs.h); a stream (FIFO, pipe, "-" for stdin) is read
// once and kept in memory, a directory is refused. Throws DataError naming the file (and byte
// offset) for an empty or non-UTF-8 input, IoError naming the file and byte offset for a read
// error, and IoError if out_dir exists and is not empty.
PrepareResult prepare_data(const PrepareOptions& opt, const tokenizer::Tokenizer& tok,
                           const std::filesystem::path& out_dir);

// The documents of a text file's content, as `data prepare` splits them (paragraphs: maximal runs
// of non-blank lines, from the start of the first line to the end of the last).
std::vector<std::string_view> text_documents(std::string_view content);
// Every non-blank line of a text file's content (the same blank-line rule), each without its '\n'.
std::vector<std::string_view> text_lines(std::string_view content);

// The tokenizer a recipe names: the byte tokenizer, or the BPE tokenizer in `path`
// (IoError naming the file if it cannot be read).
std::unique_ptr<tokenizer::Tokenizer> open_tokenizer(TokenizerKind kind, const std::string& path);

struct LoadOptions {
  bool verify = true;  // hash every shard and range-check every token at load
};

// Not thread-safe: fill() and window_of() share a cached epoch permutation; use one loader per
// thread. Movable, not copyable (it owns the shard mappings).
class DataLoader {
 public:
  // Opens every shard of a prepared directory (mapped, or read into memory; see above).
  DataLoader(const std::filesystem::path& dir, int64_t seq_len, PhiloxKey order_key, LoadOptions opt = {});
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t num_windows() const { return num_windows_; }
  int64_t num_tokens() const { return shard_start_.back(); }
  const std::string& manifest_sha256() const { return manifest_sha256_; }
  const std::string& tokenizer_digest() const { return tokenizer_digest_; }  // from the manifest
  // True when no shard's tokens are held as an in-memory copy (every non-empty shard is mapped).
  bool memory_mapped() const;

  // The window index served as global sample g.
  int64_t window_of(int64_t g) const;
  // Fills inputs and targets (B, seq_len) with global samples [first, first + B). Throws
  // DataError naming the shard file and index for a token outside [0, vocab_size).
  void fill(int32_t* inputs, int32_t* targets, int64_t first, int64_t B) const;

 private:
  struct Shard;  // one shard's tokens: a mapping of its file or a copy (core/data.cpp)
  // Copies stream tokens [pos, pos + n) into out, checking each against the vocabulary.
  void copy_tokens(int64_t pos, int64_t n, uint32_t* out) const;

  std::vector<Shard> shards_;
  std::vector<int64_t> shard_start_{0};  // (shards + 1): first stream index of each shard, then L
  int64_t vocab_size_ = 0;
  int64_t seq_len_;
  int64_t num_windows_;
  PhiloxKey order_key_;
  std::string manifest_sha256_;
  std::string tokenizer_digest_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> perm_;
};

}  // namespace ssiat
