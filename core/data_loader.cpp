// The seeded window loader and open_tokenizer (core/data.h; format and order spec in
// docs/data.md). Split from core/data.cpp (preparation), whose format constants it shares
// through core/data_format.h.
//
// DataLoader: maps each shard whose "tokens" is contiguous, unfiltered little-endian uint32 at a
// known file offset (H5Dget_offset) and reads any other into memory; with LoadOptions::verify it
// checks every shard's SHA-256 against the manifest and every token against the vocabulary at
// load, and in every mode checks each token fill() serves. A window that crosses shards is copied
// piecewise (binary search of the shard starts). It serves window perm_e[g mod W] for global
// sample g, with perm_e a Fisher-Yates shuffle driven by Philox4x32-10 (Durstenfeld 1964; Knuth
// TAOCP vol. 2 §3.4.2 Algorithm P) and unbiased bounded integers by Lemire's multiply-and-reject
// ("Fast random integer generation in an interval", ACM TOMACS 2019). The order depends only on (key, W, g).
#include <fcntl.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/data.h"
#include "core/data_format.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/h5.h"
#include "core/hash.h"
#include "tokenizer/bpe.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {
using data_format::h5_check;
using data_format::kFormat;
using data_format::kManifestName;

static_assert(std::endian::native == std::endian::little, "mapped shards are served without a byte swap");

namespace {

// Uniform integer in [0, n) for Fisher-Yates draw j of epoch e (docs/data.md): attempt a uses
// Philox counter (j, e, a, 0); x = w0 | w1 << 32; m = x * n (128-bit); accept the high half
// unless the low half is below 2^64 mod n (Lemire 2019), which makes the result exactly uniform.
uint64_t uniform_below(uint64_t n, uint32_t j, uint32_t e, PhiloxKey key) {
  for (uint32_t a = 0;; a++) {
    const PhiloxCounter c = philox4x32_10({j, e, a, 0}, key);
    const uint64_t x = static_cast<uint64_t>(c[0]) | (static_cast<uint64_t>(c[1]) << 32);
    const unsigned __int128 m = static_cast<unsigned __int128>(x) * n;
    const auto low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
      if (low < threshold) continue;
    }
    return static_cast<uint64_t>(m >> 64);
  }
}

// "FILE: token X at index I is outside the vocabulary (V)", I counted within the shard.
std::string out_of_vocabulary(const std::string& file, uint32_t token, int64_t index, int64_t vocab) {
  return file + ": token " + std::to_string(token) + " at index " + std::to_string(index) +
         " is outside the vocabulary (" + std::to_string(vocab) + ")";
}

// The file offset of a dataset stored as one contiguous run of little-endian uint32 (no filters,
// no external files, storage allocated), or nothing: then it must be read through HDF5.
std::optional<uint64_t> contiguous_offset(hid_t dset, hid_t type) {
  if (H5Tget_order(type) != H5T_ORDER_LE || H5Tequal(type, H5T_STD_U32LE) <= 0) return std::nullopt;
  H5Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
  if (!dcpl.valid() || H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || H5Pget_nfilters(dcpl.get()) != 0 ||
      H5Pget_external_count(dcpl.get()) != 0)
    return std::nullopt;
  const haddr_t offset = H5Dget_offset(dset);
  if (offset == HADDR_UNDEF) return std::nullopt;
  return static_cast<uint64_t>(offset);
}

}  // namespace

// One shard's tokens: `count` little-endian uint32 at `bytes`, inside a read-only mapping of the
// whole file (map, map_bytes; unmapped on destruction) or inside `copy`. Move-only.
struct DataLoader::Shard {
  std::string file;
  int64_t count = 0;
  const unsigned char* bytes = nullptr;  // (count * 4)
  void* map = nullptr;
  size_t map_bytes = 0;
  std::vector<uint32_t> copy;

  Shard() = default;
  Shard(Shard&& o) noexcept
      : file(std::move(o.file)),
        count(std::exchange(o.count, 0)),
        bytes(std::exchange(o.bytes, nullptr)),
        map(std::exchange(o.map, nullptr)),
        map_bytes(std::exchange(o.map_bytes, 0)),
        copy(std::move(o.copy)) {}  // a moved vector keeps its buffer: `bytes` stays valid
  Shard& operator=(Shard&& o) noexcept {
    Shard tmp(std::move(o));
    std::swap(file, tmp.file);
    std::swap(count, tmp.count);
    std::swap(bytes, tmp.bytes);
    std::swap(map, tmp.map);
    std::swap(map_bytes, tmp.map_bytes);
    std::swap(copy, tmp.copy);
    return *this;
  }
  ~Shard() {
    if (map) ::munmap(map, map_bytes);
  }

  // Opens `file`, checks its "tokens" (uint32, 1-D, expect_tokens long) and maps it, or reads it.
  static Shard open(const fs::path& file, int64_t expect_tokens);
  // Maps the whole file read-only; the tokens start at byte `offset` (IoError naming the file if
  // it is shorter than offset + count * 4, or cannot be opened or mapped).
  void map_file(const fs::path& path, uint64_t offset);
};

DataLoader::Shard DataLoader::Shard::open(const fs::path& file, int64_t expect_tokens) {
  hid_t fid = -1, did = -1;
  H5E_BEGIN_TRY {
    fid = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid >= 0) did = H5Dopen2(fid, "tokens", H5P_DEFAULT);
  }
  H5E_END_TRY;
  H5Handle f(fid, H5Fclose);
  H5Handle d(did, H5Dclose);
  if (!f.valid()) {
    const int err = h5_stack_errno();
    throw IoError(file.string() + ": cannot open as HDF5" + (err > 0 ? ": " + errno_message(err) : " (not an HDF5 file?)"));
  }
  if (!d.valid()) throw IoError(file.string() + ": no dataset \"tokens\"");
  H5Handle type(H5Dget_type(d.get()), H5Tclose);
  H5Handle space(H5Dget_space(d.get()), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Tget_size(type.get()) != 4 ||
      H5Tget_sign(type.get()) != H5T_SGN_NONE)
    throw IoError(file.string() + ": dataset \"tokens\" is not uint32");
  hsize_t dims[1] = {0};
  if (H5Sget_simple_extent_ndims(space.get()) != 1 || H5Sget_simple_extent_dims(space.get(), dims, nullptr) != 1)
    throw IoError(file.string() + ": dataset \"tokens\" is not 1-D");
  if (static_cast<int64_t>(dims[0]) != expect_tokens)
    throw IoError(file.string() + ": " + std::to_string(dims[0]) + " tokens, manifest says " +
                  std::to_string(expect_tokens));
  Shard sh;
  sh.file = file.string();
  sh.count = expect_tokens;
  if (expect_tokens == 0) return sh;
  if (const auto offset = contiguous_offset(d.get(), type.get())) {
    sh.map_file(file, *offset);
    return sh;
  }
  sh.copy.resize(static_cast<size_t>(expect_tokens));
  h5_check(H5Dread(d.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, sh.copy.data()) >= 0, file,
           "read of \"tokens\"");
  sh.bytes = reinterpret_cast<const unsigned char*>(sh.copy.data());
  return sh;
}

void DataLoader::Shard::map_file(const fs::path& path, uint64_t offset) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path.string() + ": cannot open: " + errno_message(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError(path.string() + ": cannot stat: " + errno_message(err));
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (offset > size || static_cast<uint64_t>(count) > (size - offset) / 4) {
    ::close(fd);
    throw IoError(path.string() + ": dataset \"tokens\" at byte " + std::to_string(offset) + " (" +
                  std::to_string(count) + " tokens) extends past the end of the file (" + std::to_string(size) +
                  " bytes)");
  }
  void* p = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw IoError(path.string() + ": cannot map: " + errno_message(err));
  ::madvise(p, static_cast<size_t>(size), MADV_RANDOM);  // windows are read in shuffled order
  map = p;
  map_bytes = static_cast<size_t>(size);
  bytes = static_cast<const unsigned char*>(p) + offset;
}

DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

DataLoader::DataLoader(const fs::path& dir, int64_t seq_len, PhiloxKey order_key, LoadOptions opt)
    : seq_len_(seq_len), num_windows_(0), order_key_(order_key) {
  if (seq_len <= 0) throw ConfigError("data loader: seq_len must be positive, got " + std::to_string(seq_len));
  const fs::path manifest_path = dir / kManifestName;
  const std::string text = read_whole_file(manifest_path);
  manifest_sha256_ = sha256_hex(text);
  json manifest;
  try {
    manifest = json::parse(text);
  } catch (const json::parse_error& e) {
    throw IoError(manifest_path.string() + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + json_error_message(e));
  }
  int64_t vocab = 0;
  struct ShardEntry {
    fs::path file;
    int64_t tokens;
  };
  std::vector<ShardEntry> shards;
  int64_t total = 0;
  try {
    if (manifest.at("format").get<std::string>() != kFormat)
      throw IoError(manifest_path.string() + ": format is not " + kFormat);
    vocab = manifest.at("tokenizer").at("vocab_size").get<int64_t>();
    tokenizer_digest_ = manifest.at("tokenizer").at("digest").get<std::string>();
    for (const auto& entry : manifest.at("shards")) {
      const auto name = entry.at("file").get<std::string>();
      const auto expect_sha = entry.at("sha256").get<std::string>();
      const auto expect_tokens = entry.at("tokens").get<int64_t>();
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        throw IoError(manifest_path.string() + ": bad shard file name '" + name + "'");
      const fs::path file = dir / name;
      if (opt.verify) {
        const std::string got_sha = sha256_file(file);
        if (got_sha != expect_sha)
          throw IoError(file.string() + ": SHA-256 mismatch (manifest " + expect_sha + ", file " + got_sha + ")");
      }
      std::error_code ec;
      const uintmax_t file_bytes = fs::file_size(file, ec);
      if (ec) throw IoError(file.string() + ": " + errno_message(ec.value()));
      // A shard cannot hold more uint32 tokens than a quarter of its bytes.
      if (expect_tokens < 0 || static_cast<uintmax_t>(expect_tokens) > file_bytes / 4)
        throw IoError(manifest_path.string() + ": implausible token count for " + name);
      shards.push_back({file, expect_tokens});
      total += expect_tokens;
    }
  } catch (const json::exception& e) {
    throw IoError(manifest_path.string() + ": missing or wrong-typed field: " + json_error_message(e));
  }
  vocab_size_ = vocab;

  const H5QuietErrors quiet;
  shards_.reserve(shards.size());
  for (const auto& [file, expect_tokens] : shards) {
    shards_.push_back(Shard::open(file, expect_tokens));
    shard_start_.push_back(shard_start_.back() + expect_tokens);
  }
  if (opt.verify) {  // the full range pass: fill() checks again what it serves
    std::vector<uint32_t> buf(size_t{1} << 16);
    for (int64_t pos = 0; pos < total; pos += static_cast<int64_t>(buf.size()))
      copy_tokens(pos, std::min<int64_t>(total - pos, static_cast<int64_t>(buf.size())), buf.data());
  }

  const int64_t L = total;
  if (L < seq_len + 1)
    throw DataError(dir.string() + ": " + std::to_string(L) + " tokens are too few for one window of seq_len " +
                    std::to_string(seq_len));
  num_windows_ = (L - 1) / seq_len;
  if (num_windows_ > static_cast<int64_t>(UINT32_MAX))
    throw DataError(dir.string() + ": " + std::to_string(num_windows_) + " windows exceed the 2^32 order limit");
}

int64_t DataLoader::window_of(int64_t g) const {
  SSIAT_CHECK(g >= 0) << "data loader: negative sample index " << g;
  const int64_t epoch = g / num_windows_;
  SSIAT_CHECK(epoch <= static_cast<int64_t>(UINT32_MAX)) << "data loader: epoch " << epoch << " beyond 2^32";
  if (epoch != cached_epoch_) {
    // Durstenfeld's Fisher-Yates: for j = W-1 down to 1, swap perm[j] with perm[U(j+1)].
    perm_.resize(static_cast<size_t>(num_windows_));
    for (int64_t i = 0; i < num_windows_; i++) perm_[i] = i;
    for (int64_t j = num_windows_ - 1; j >= 1; j--) {
      const auto k = static_cast<int64_t>(uniform_below(static_cast<uint64_t>(j) + 1, static_cast<uint32_t>(j),
                                                        static_cast<uint32_t>(epoch), order_key_));
      std::swap(perm_[j], perm_[k]);
    }
    cached_epoch_ = epoch;
  }
  return perm_[static_cast<size_t>(g % num_windows_)];
}

bool DataLoader::memory_mapped() const {
  return std::all_of(shards_.begin(), shards_.end(), [](const Shard& s) { return s.count == 0 || s.map; });
}

void DataLoader::copy_tokens(int64_t pos, int64_t n, uint32_t* out) const {
  SSIAT_CHECK(pos >= 0 && n >= 0 && pos + n <= shard_start_.back())
      << "data loader: tokens [" << pos << ", " << pos + n << ") outside the stream of " << shard_start_.back();
  // The last shard starting at or before pos; empty shards are stepped over below.
  auto s = static_cast<size_t>(std::upper_bound(shard_start_.begin(), shard_start_.end(), pos) - shard_start_.begin() - 1);
  while (n > 0) {
    const Shard& sh = shards_[s];
    const int64_t i = pos - shard_start_[s];
    const int64_t k = std::min(n, sh.count - i);
    if (k > 0) {
      std::memcpy(out, sh.bytes + i * 4, static_cast<size_t>(k) * 4);  // little-endian host: no swap
      for (int64_t j = 0; j < k; j++)
        if (out[j] >= static_cast<uint64_t>(vocab_size_))
          throw DataError(out_of_vocabulary(sh.file, out[j], i + j, vocab_size_));
      out += k;
      pos += k;
      n -= k;
    }
    s++;
  }
}

void DataLoader::fill(int32_t* inputs, int32_t* targets, int64_t first, int64_t B) const {
  SSIAT_CHECK(first >= 0 && B >= 0) << "data loader: bad range first=" << first << " B=" << B;
  const int64_t T = seq_len_;
  std::vector<uint32_t> src(static_cast<size_t>(T + 1));  // (T + 1) tokens from the stream
  for (int64_t b = 0; b < B; b++) {
    copy_tokens(window_of(first + b) * T, T + 1, src.data());
    int32_t* in = inputs + b * T;   // (B, T)
    int32_t* tg = targets + b * T;  // (B, T)
    for (int64_t t = 0; t < T; t++) {
      in[t] = static_cast<int32_t>(src[t]);
      tg[t] = static_cast<int32_t>(src[t + 1]);
    }
  }
}

std::unique_ptr<tokenizer::Tokenizer> open_tokenizer(TokenizerKind kind, const std::string& path) {
  if (kind == TokenizerKind::kByte) return tokenizer::make_byte_tokenizer();
  try {
    return tokenizer::BpeTokenizer::load(path);
  } catch (const tokenizer::TokenizerError& e) {
    throw IoError(e.what());
  }
}


}  // namespace ssiat
