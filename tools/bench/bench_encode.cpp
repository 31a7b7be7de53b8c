// Encoding throughput of our BPE tokenizer against libsentencepiece (Debian 0.1.97) on the same
// model (DIR/tokenizer.model, written by us) and text, in one process, on 1 and 2 threads.
// Both sides get the same lines and threads split the lines the same way; each side is run
// `reps` times and the best time counts. Ids must agree line for line (checked, exit 1 if not).
// Usage: bench_encode TOKENIZER_DIR HELDOUT_TXT [reps=3]   -> one JSON line on stdout.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_encode TOKENIZER_DIR HELDOUT_TXT [reps]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int reps = argc > 3 ? std::atoi(argv[3]) : 3;
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "bench_encode: %s: cannot open\n", argv[2]);
    return 2;
  }
  std::vector<std::string> lines;
  size_t bytes = 0;
  for (std::string l; std::getline(in, l);) bytes += l.size(), lines.push_back(std::move(l));
  std::vector<std::string_view> views(lines.begin(), lines.end());

  auto ours = ssiat::tokenizer::BpeTokenizer::load(dir);
  sentencepiece::SentencePieceProcessor spm;
  if (const auto st = spm.Load(dir + "/tokenizer.model"); !st.ok()) {
    std::fprintf(stderr, "bench_encode: libsentencepiece cannot load %s/tokenizer.model: %s\n", dir.c_str(), st.ToString().c_str());
    return 1;
  }

  nlohmann::json out = {{"lines", lines.size()}, {"mb", bytes / 1e6}, {"reps", reps}};
  std::vector<std::vector<int>> ref(lines.size());
  for (int threads : {1, 2}) {
    // libsentencepiece: Encode is const and thread-safe; lines split into contiguous blocks.
    const double t_spm = best_seconds(reps, [&] {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; t++)
        pool.emplace_back([&, t] {
          for (size_t i = lines.size() * t / threads; i < lines.size() * (t + 1) / threads; i++) spm.Encode(lines[i], &ref[i]);
        });
      for (auto& th : pool) th.join();
    });
    std::vector<std::vector<int32_t>> ids;
    // Ours: a fresh tokenizer each rep, so the pre-token cache starts cold every time.
    const double t_ours = best_seconds(reps, [&] {
      auto tok = ssiat::tokenizer::BpeTokenizer(ours->vocab());
      ids = tok.encode_batch(views, threads);
    });
    size_t same = 0;
    for (size_t i = 0; i < lines.size(); i++) same += std::equal(ids[i].begin(), ids[i].end(), ref[i].begin(), ref[i].end());
    const std::string k = "threads_" + std::to_string(threads);
    out[k] = {{"spm_mb_s", bytes / 1e6 / t_spm}, {"ssiat_mb_s", bytes / 1e6 / t_ours}, {"ratio", t_spm / t_ours},
              {"identical_lines", same}};
    if (same != lines.size()) {
      std::printf("%s\n", out.dump().c_str());
      std::fprintf(stderr, "bench_encode: ids differ from libsentencepiece on %zu of %zu lines\n", lines.size() - same, lines.size());
      return 1;
    }
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
