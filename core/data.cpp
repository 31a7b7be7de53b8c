// Token data preparation and the seeded window loader (core/data.h; format and order spec in
// docs/data.md).
//
// prepare_data: pass 1 reads every input, refuses an empty or non-UTF-8 file (DataError with the
// file and byte offset) and records its SHA-256; pass 2 re-reads each file (refusing one that
// changed since pass 1), splits it into documents, tokenises them, appends eos and packs whole
// documents into shards of at most shard_tokens tokens (a longer document gets a shard of its
// own). Everything is written into a temporary directory beside out_dir and renamed into place,
// so a failure leaves nothing behind (and a killed run's temporary is removed by the next run).
// Shard files are byte-reproducible: HDF5 object time tracking is off; each is built in memory
// and written with checked writes. HDF5 errors are one line naming the file and dataset.
//
// DataLoader and open_tokenizer: core/data_loader.cpp.
#include "core/data.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/data_format.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/hash.h"
#include "tokenizer/bpe.h"
#include "tokenizer/utf8.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {
namespace {

using data_format::h5_check;
using data_format::kFormat;
using data_format::kManifestName;

// ---------------------------------------------------------------------------------------------
// Small helpers

bool is_blank_line(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; });
}

// ---------------------------------------------------------------------------------------------
// Documents

// Calls fn(doc) for every document of a text file: maximal runs of non-blank lines, kept byte
// for byte from the start of the first line to the end of the last (its '\n' excluded).
template <typename Fn>
void for_each_text_document(std::string_view content, Fn&& fn) {
  size_t pos = 0;
  size_t doc_begin = std::string_view::npos, doc_end = 0;
  while (pos <= content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) nl = content.size();
    const std::string_view line = content.substr(pos, nl - pos);
    if (is_blank_line(line)) {
      if (doc_begin != std::string_view::npos) fn(content.substr(doc_begin, doc_end - doc_begin));
      doc_begin = std::string_view::npos;
    } else {
      if (doc_begin == std::string_view::npos) doc_begin = pos;
      doc_end = nl;
    }
    if (nl == content.size()) break;
    pos = nl + 1;
  }
  if (doc_begin != std::string_view::npos) fn(content.substr(doc_begin, doc_end - doc_begin));
}

// Calls fn(doc) for the "text" field of every non-blank line of a JSONL file; empty texts are
// skipped. Errors name the file and the 1-based line.
template <typename Fn>
void for_each_jsonl_document(std::string_view content, const fs::path& file, Fn&& fn) {
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) nl = content.size();
    const std::string_view line = content.substr(pos, nl - pos);
    line_no++;
    pos = nl + 1;
    if (is_blank_line(line)) continue;
    const std::string where = file.string() + ":" + std::to_string(line_no);
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::exception& e) {
      throw DataError(where + ": invalid JSON: " + json_error_message(e));
    }
    if (!obj.is_object() || !obj.contains("text") || !obj["text"].is_string())
      throw DataError(where + ": expected an object with a string field \"text\"");
    const std::string& text = obj["text"].get_ref<const std::string&>();
    if (auto bad = tokenizer::find_invalid_utf8(text))
      throw DataError(where + ": \"text\" is invalid UTF-8 at byte " + std::to_string(*bad) + " of the value");
    if (!text.empty()) fn(std::string_view(text));
  }
}

InputFormat format_of(const PrepareOptions& opt, const fs::path& file) {
  if (!opt.auto_format) return opt.format;
  return file.extension() == ".jsonl" ? InputFormat::kJsonl : InputFormat::kText;
}

// ---------------------------------------------------------------------------------------------
// Shard writing

void write_string_attr(hid_t obj, const char* name, const std::string& value, const fs::path& file) {
  H5Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  h5_check(type.valid() && H5Tset_size(type.get(), H5T_VARIABLE) >= 0 &&
               H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0,
           file, "string type");
  H5Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  h5_check(attr.valid(), file, "attribute create");
  const char* ptr = value.c_str();
  h5_check(H5Awrite(attr.get(), type.get(), &ptr) >= 0, file, "attribute write");
}

void write_dataset(hid_t file_id, const char* name, hid_t file_type, hid_t mem_type, const void* data,
                   size_t n, const fs::path& file) {
  const hsize_t dims[1] = {static_cast<hsize_t>(n)};
  H5Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  h5_check(space.valid() && dcpl.valid() && H5Pset_obj_track_times(dcpl.get(), false) >= 0, file, "dataset setup");
  H5Handle dset(H5Dcreate2(file_id, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
            H5Dclose);
  h5_check(dset.valid(), file, "dataset create");
  h5_check(H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, file, "dataset write");
}

// Builds the shard in memory (HDF5's core driver, no backing store) and writes its image with
// checked writes: a failing disk is an IoError naming the file, and HDF5 never holds a
// half-written file open (its exit handler would crash closing one).
void write_shard(const fs::path& file, const std::vector<uint32_t>& tokens, const std::vector<uint64_t>& offsets,
                 const std::string& source_sha256, const std::string& tokenizer_digest) {
  const H5QuietErrors quiet;
  std::vector<char> image;
  {
    H5Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    h5_check(fcpl.valid() && fapl.valid() && H5Pset_obj_track_times(fcpl.get(), false) >= 0 &&
                 H5Pset_fapl_core(fapl.get(), size_t{1} << 20, false) >= 0,
             file, "file setup");
    H5Handle f(H5Fcreate(file.c_str(), H5F_ACC_EXCL, fcpl.get(), fapl.get()), H5Fclose);
    h5_check(f.valid(), file, "file create");
    write_dataset(f.get(), "tokens", H5T_STD_U32LE, H5T_NATIVE_UINT32, tokens.data(), tokens.size(), file);
    write_dataset(f.get(), "doc_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, offsets.data(), offsets.size(), file);
    write_string_attr(f.get(), "source_sha256", source_sha256, file);
    write_string_attr(f.get(), "tokenizer_digest", tokenizer_digest, file);
    h5_check(H5Fflush(f.get(), H5F_SCOPE_GLOBAL) >= 0, file, "flush");
    const ssize_t size = H5Fget_file_image(f.get(), nullptr, 0);
    h5_check(size > 0, file, "file image size");
    image.resize(static_cast<size_t>(size));
    h5_check(H5Fget_file_image(f.get(), image.data(), image.size()) == size, file, "file image");
    h5_check(H5Fclose(f.release()) >= 0, file, "file close");
  }
  write_file_atomic(file, std::string_view(image.data(), image.size()));
}

// Packs whole documents into shards of at most shard_tokens tokens and writes them into dir.
class ShardPacker {
 public:
  ShardPacker(fs::path dir, int64_t shard_tokens, std::string tokenizer_digest)
      : dir_(std::move(dir)), shard_tokens_(shard_tokens), tokenizer_digest_(std::move(tokenizer_digest)) {
    offsets_.push_back(0);
  }

  // doc: the document's ids including the trailing eos.
  void add(const std::vector<uint32_t>& doc, const std::string& source_sha) {
    if (!tokens_.empty() && static_cast<int64_t>(tokens_.size() + doc.size()) > shard_tokens_) flush();
    tokens_.insert(tokens_.end(), doc.begin(), doc.end());
    offsets_.push_back(tokens_.size());
    if (std::find(sources_.begin(), sources_.end(), source_sha) == sources_.end()) sources_.push_back(source_sha);
  }

  void flush() {
    if (tokens_.empty()) return;
    char name[32];
    std::snprintf(name, sizeof(name), "shard_%05zu.h5", entries_.size());
    const fs::path file = dir_ / name;
    std::string joined;
    for (const auto& s : sources_) joined += (joined.empty() ? "" : ",") + s;
    write_shard(file, tokens_, offsets_, joined, tokenizer_digest_);
    entries_.push_back({{"file", name},
                        {"sha256", sha256_file(file)},
                        {"tokens", static_cast<int64_t>(tokens_.size())},
                        {"documents", static_cast<int64_t>(offsets_.size() - 1)}});
    tokens_.clear();
    offsets_.assign(1, 0);
    sources_.clear();
  }

  const json& entries() const { return entries_; }

 private:
  fs::path dir_;
  int64_t shard_tokens_;
  std::string tokenizer_digest_;
  std::vector<uint32_t> tokens_;
  std::vector<uint64_t> offsets_;  // (documents + 1)
  std::vector<std::string> sources_;
  json entries_ = json::array();
};

fs::path strip_trailing_separator(fs::path p) {
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

}  // namespace

std::vector<std::string_view> text_lines(std::string_view content) {
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < content.size();) {
    const size_t nl = std::min(content.find('\n', pos), content.size());
    if (!is_blank_line(content.substr(pos, nl - pos))) lines.push_back(content.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

std::vector<std::string_view> text_documents(std::string_view content) {
  std::vector<std::string_view> docs;
  for_each_text_document(content, [&](std::string_view d) { docs.push_back(d); });
  return docs;
}

// -----------------------------------------------------------------------------------------------
// prepare_data

PrepareResult prepare_data(const PrepareOptions& opt, const tokenizer::Tokenizer& tok, const fs::path& out_dir_in) {
  if (opt.inputs.empty()) throw ConfigError("data prepare: no input files");
  if (opt.shard_tokens <= 0)
    throw ConfigError("data prepare: shard_tokens must be positive, got " + std::to_string(opt.shard_tokens));
  const fs::path out_dir = strip_trailing_separator(out_dir_in);
  std::error_code ec;
  if (fs::exists(out_dir, ec)) {
    if (!fs::is_directory(out_dir)) throw IoError(out_dir.string() + ": exists and is not a directory");
    if (!fs::is_empty(out_dir)) throw IoError(out_dir.string() + ": output directory exists and is not empty");
  }

  // Pass 1: every input non-empty, valid UTF-8; record its digest and size. A stream (FIFO, pipe,
  // "-") can be read only once: its bytes are kept for pass 2.
  struct Source {
    fs::path path;
    std::string sha256;
    int64_t bytes;
    std::string kept;  // a stream's content
  };
  std::vector<Source> sources;
  for (const auto& path : opt.inputs) {
    std::string content = read_whole_file(path, InputKind::kStreamOk);
    if (content.empty()) throw DataError(path.string() + ": empty");
    if (auto bad = tokenizer::find_invalid_utf8(content))
      throw DataError(path.string() + ": invalid UTF-8 at byte " + std::to_string(*bad));
    sources.push_back({path, sha256_hex(content), static_cast<int64_t>(content.size()), ""});
    if (is_stream_input(path)) sources.back().kept = std::move(content);
  }

  const fs::path parent = out_dir.has_parent_path() ? out_dir.parent_path() : fs::path(".");
  const fs::path tmp = temporary_beside(out_dir);
  // Temporaries of this output left by a killed `data prepare` (their pid is dead) go first.
  remove_stale_temporaries(parent, out_dir.filename().string());
  try {
    fs::create_directories(parent);
    fs::remove_all(tmp);
    fs::create_directory(tmp);
  } catch (const fs::filesystem_error& e) {
    throw IoError(tmp.string() + ": cannot create temporary directory: " + e.code().message());
  }

  PrepareResult result;
  try {
    ShardPacker packer(tmp, opt.shard_tokens, tok.digest());
    json src_entries = json::array();
    const int64_t vocab = tok.vocab_size();
    const auto eos = static_cast<uint32_t>(tok.eos_id());
    for (auto& src : sources) {
      const std::string content = src.kept.empty() ? read_whole_file(src.path) : std::move(src.kept);
      if (sha256_hex(content) != src.sha256)
        throw IoError(src.path.string() + ": changed while data prepare was reading it");
      int64_t docs = 0;
      // Documents are encoded in blocks (threads inside the tokenizer), then packed in order.
      std::vector<std::string> block;
      size_t block_bytes = 0;
      auto flush_block = [&] {
        const std::vector<std::string_view> views(block.begin(), block.end());
        const auto all = tok.encode_batch(views, opt.threads);
        for (const auto& ids : all) {
          std::vector<uint32_t> doc(ids.size() + 1);
          for (size_t i = 0; i < ids.size(); i++) {
            if (ids[i] < 0 || ids[i] >= vocab)
              throw DataError(src.path.string() + ": tokenizer produced id " + std::to_string(ids[i]) +
                              " outside [0, " + std::to_string(vocab) + ")");
            doc[i] = static_cast<uint32_t>(ids[i]);
          }
          doc.back() = eos;
          packer.add(doc, src.sha256);
          docs++;
          result.tokens += static_cast<int64_t>(doc.size());
        }
        block.clear();
        block_bytes = 0;
      };
      auto add_doc = [&](std::string_view text) {
        block.emplace_back(text);
        block_bytes += text.size();
        if (block.size() >= 8192 || block_bytes >= (size_t{64} << 20)) flush_block();
      };
      if (format_of(opt, src.path) == InputFormat::kJsonl)
        for_each_jsonl_document(content, src.path, add_doc);
      else
        for_each_text_document(content, add_doc);
      flush_block();
      if (docs == 0) throw DataError(src.path.string() + ": empty (no documents)");
      result.documents += docs;
      src_entries.push_back(
          {{"path", src.path.string()}, {"sha256", src.sha256}, {"bytes", src.bytes}, {"documents", docs}});
      if (opt.progress)
        std::cerr << "data prepare: " << src.path.string() << ": " << docs << " documents\n";
    }
    packer.flush();
    result.shards = static_cast<int64_t>(packer.entries().size());

    json manifest = {{"format", kFormat},
                     {"tokenizer", {{"name", tok.name()}, {"digest", tok.digest()}, {"vocab_size", vocab}}},
                     {"sources", src_entries},
                     {"shards", packer.entries()},
                     {"tokens", result.tokens},
                     {"documents", result.documents}};
    write_file_atomic(tmp / kManifestName, manifest.dump(2) + "\n");
    if (fs::exists(out_dir)) fs::remove(out_dir);  // empty (checked above)
    publish_dir_atomic(tmp, out_dir);
  } catch (const fs::filesystem_error& e) {
    std::error_code ignore;
    fs::remove_all(tmp, ignore);
    throw IoError(e.path1().string() + ": " + e.code().message());
  } catch (...) {
    std::error_code ignore;
    fs::remove_all(tmp, ignore);
    throw;
  }
  return result;
}

}  // namespace ssiat
