// Memory plan of a recipe and the memory available to this process (contract in
// core/memory_plan.h). The buffer list mirrors Llama<T>::layout()/ensure_capacity(), AdamW and
// train(); tests/core/test_memory_plan.cpp checks it against the model and a hand count.
#include "core/memory_plan.h"

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>

#include "core/buffer.h"
#include "core/error.h"

namespace ssiat {
namespace {

constexpr int64_t kF32 = 4, kI32 = 4, kF64 = 8;
// Code, shared libraries, OpenMP/BLAS thread buffers: a `bench train-step` of the tiny test
// recipe peaks at about 18 MiB.
constexpr int64_t kProgramBytes = int64_t{32} << 20;

// Where a key's value came from: the --set override that set it last, else the recipe file.
std::string origin_of(const Recipe& r, const std::string& key) {
  for (auto it = r.overrides.rbegin(); it != r.overrides.rend(); ++it) {
    const size_t eq = it->find('=');
    if (eq == std::string::npos) continue;
    std::string k = it->substr(0, eq);
    k.erase(0, k.find_first_not_of(" \t"));
    k.erase(k.find_last_not_of(" \t") + 1);
    if (k == key) return "--set " + *it;
  }
  return r.path.empty() ? "recipe" : r.path;
}

// One factor of a size: a recipe key ("train.seq_len") or a derived quantity ("head_dim").
struct Factor {
  std::string label;
  int64_t value;
  bool is_key = true;
};

std::string join_labels(const std::vector<Factor>& fs, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; i++) s += (i ? "*" : "") + fs[i].label;
  return s;
}

// Element count prod(fs), checked. An overflow is a ConfigError that blames the largest recipe
// key among the factors multiplied so far, e.g. "r.toml: model.vocab_size = 2147483647 with
// train.micro_batch*train.seq_len = 1099511627776 overflows the logits size".
int64_t product(const Recipe& r, const std::string& what, const std::vector<Factor>& fs) {
  int64_t p = 1;
  for (size_t i = 0; i < fs.size(); i++) {
    int64_t next = 0;
    if (fs[i].value >= 0 && !__builtin_mul_overflow(p, fs[i].value, &next)) {
      p = next;
      continue;
    }
    size_t blame = i;
    for (size_t j = 0; j <= i; j++)
      if (fs[j].is_key && (!fs[blame].is_key || fs[j].value > fs[blame].value)) blame = j;
    std::string msg = (fs[blame].is_key ? origin_of(r, fs[blame].label) : (r.path.empty() ? "recipe" : r.path)) + ": " +
                      fs[blame].label + " = " + std::to_string(fs[blame].value);
    std::vector<Factor> others;
    for (size_t j = 0; j <= i; j++)
      if (j != blame) others.push_back(fs[j]);
    int64_t rest = 1;
    bool rest_ok = true;
    for (const auto& f : others) rest_ok = rest_ok && !__builtin_mul_overflow(rest, f.value, &rest);
    if (!others.empty()) msg += " with " + join_labels(others, others.size()) + (rest_ok ? " = " + std::to_string(rest) : "");
    throw ConfigError(msg + " overflows the " + what + " size");
  }
  return p;
}

// Bytes of a Buffer of `elements` items of `elem` bytes (rounded up to 64, as core/buffer.h).
int64_t buffer_of(const Recipe& r, const std::string& what, const std::vector<Factor>& fs, int64_t elem) {
  std::vector<Factor> all = fs;
  all.push_back({std::to_string(elem) + " B", elem, false});
  const int64_t bytes = product(r, what, all);
  if (bytes > INT64_MAX - 63) throw ConfigError((r.path.empty() ? "recipe" : r.path) + ": the " + what + " size overflows");
  return (bytes + 63) / 64 * 64;
}

int64_t sum(const Recipe& r, const std::string& what, std::initializer_list<int64_t> xs) {
  int64_t s = 0;
  for (int64_t x : xs)
    if (__builtin_add_overflow(s, x, &s))
      throw ConfigError((r.path.empty() ? "recipe" : r.path) + ": the " + what + " size overflows 64-bit integers");
  return s;
}

struct Dims {
  Factor V, C, L, F, NH, NKV, HS, QKV, maxT;
};

// This rank's dimensions: under tensor parallelism (parallel.tp) the heads, kv heads, MLP width
// and vocabulary are split (core/model.h); d_model and head_dim are whole.
Dims dims_of(const Recipe& r) {
  const ModelConfig& m = r.model;
  const int64_t nkv = m.n_kv_head > 0 ? m.n_kv_head : m.n_head;
  const int64_t tp = std::max<int64_t>(1, r.parallel.tp);
  const bool split = tp > 1;
  Dims d{{split ? "model.vocab_size/parallel.tp" : "model.vocab_size", m.vocab_size / tp, !split},
         {"model.d_model", m.d_model},
         {"model.n_layer", m.n_layer},
         {split ? "model.d_ff/parallel.tp" : "model.d_ff", m.d_ff / tp, !split},
         {split ? "model.n_head/parallel.tp" : "model.n_head", m.n_head / tp, !split},
         {split ? "model.n_kv_head/parallel.tp" : "model.n_kv_head", nkv / tp, !split},
         {"head_dim", m.d_model / m.n_head, false},
         {"(model.n_head+2*model.n_kv_head)*head_dim", 0, false},
         {"model.max_seq_len", m.max_seq_len}};
  const int64_t heads = sum(r, "q|k|v", {d.NH.value, product(r, "q|k|v", {{"2", 2, false}, d.NKV})});
  d.QKV.value = product(r, "q|k|v", {{"(model.n_head+2*model.n_kv_head)", heads, false}, d.HS});
  return d;
}

// Parameters a rank holds with dimensions d (norms whole).
int64_t count_params_of(const Recipe& r, const Dims& d) {
  const std::string what = "parameter";
  const int64_t embed = product(r, what, {d.V, d.C});
  const Factor q{"model.n_head*head_dim", product(r, what, {d.NH, d.HS}), false};
  const Factor kv{"model.n_kv_head*head_dim", product(r, what, {d.NKV, d.HS}), false};
  const int64_t layer = sum(r, what,
                            {d.C.value, product(r, what, {q, d.C}), product(r, what, {{"2", 2, false}, kv, d.C}),
                             product(r, what, {d.C, q}), d.C.value, product(r, what, {{"3", 3, false}, d.F, d.C})});
  const int64_t layers = product(r, what, {d.L, {"per-layer parameters", layer, false}});
  return sum(r, what, {embed, layers, d.C.value, r.model.tied_embeddings ? 0 : embed});
}

}  // namespace

const MemoryItem& MemoryPlan::largest() const {
  SSIAT_CHECK(!items.empty()) << "empty memory plan";
  return *std::max_element(items.begin(), items.end(),
                           [](const MemoryItem& a, const MemoryItem& b) { return a.bytes < b.bytes; });
}

int64_t count_params(const Recipe& r) {
  Recipe whole = r;
  whole.parallel.tp = 1;
  return count_params_of(whole, dims_of(whole));
}

int64_t sequence_capacity(const Recipe& r, PlanFor use) {
  const TrainConfig& tc = r.train;
  if (use == PlanFor::kBench || tc.sample_tokens <= 0) return tc.seq_len;
  int64_t want = 0;  // prompt tokens (at most its bytes, + a dummy prefix or <eos>) + sampled; saturating
  if (__builtin_add_overflow(static_cast<int64_t>(tc.sample_prompt.size()) + 2, tc.sample_tokens, &want)) want = INT64_MAX;
  return std::max(tc.seq_len, std::min(r.model.max_seq_len, want));
}

MemoryPlan plan_memory(const Recipe& r, PlanFor use, const RankPlace& place) {
  const Dims d = dims_of(r);
  const TrainConfig& tc = r.train;
  const ParallelConfig& par = r.parallel;
  MemoryPlan plan;
  plan.num_params = count_params_of(r, d);
  const Factor P{"num_params", plan.num_params, false};
  const Factor B{"train.micro_batch", tc.micro_batch};

  // Sequence capacity (sequence_capacity()): sampling can grow every activation buffer to B * that.
  Factor T{"train.seq_len", tc.seq_len};
  if (const int64_t t_gen = sequence_capacity(r, use); t_gen > tc.seq_len)
    T = t_gen == r.model.max_seq_len ? Factor{"model.max_seq_len", t_gen}
                                     : Factor{"(train.sample_prompt+train.sample_tokens)", t_gen};
  product(r, "activation", {B, T});  // N = B * T, checked first so an overflow names these two keys
  // Counters of the training loop: tokens per step and the samples seen by the last step.
  product(r, "tokens per step", {B, {"train.seq_len", tc.seq_len}, {"train.grad_accum", tc.grad_accum}});
  product(r, "samples seen", {{"train.steps", tc.steps}, {"train.grad_accum", tc.grad_accum}, B});
  const std::string BT = B.label + "*" + T.label;

  auto add = [&](std::string name, std::string formula, int64_t bytes) {
    plan.items.push_back({std::move(name), std::move(formula), bytes});
  };

  // Flat parameter-sized buffers (core/model.h, core/optimizer.h); the formula names the keys
  // that drive the count: the embedding (and head) or the layers.
  const int64_t copies = r.model.tied_embeddings ? 1 : 2;
  const int64_t embeds = product(r, "parameter", {{std::to_string(copies), copies, false}, d.V, d.C});
  const char* driver = embeds >= plan.num_params - embeds
                           ? "mostly model.vocab_size*model.d_model"
                           : "mostly model.n_layer*model.d_model*(model.d_model+model.d_ff)";
  const std::string pformula = "num_params*4 B, num_params = " + std::to_string(plan.num_params) + " (" + driver + ")";
  for (const char* name : {"parameters", "gradients"}) add(name, pformula, buffer_of(r, name, {P}, kF32));
  // ZeRO-1 (core/data_parallel.h): a dp rank's slice of every 2^24-element bucket.
  const bool zero1 = par.zero1 && par.dp > 1;
  const int64_t state = zero1 ? plan.num_params / par.dp + plan.num_params / (int64_t{1} << 24) + 1 : plan.num_params;
  for (const char* name : {"AdamW m", "AdamW v"})
    add(name, zero1 ? "num_params/parallel.dp*4 B (ZeRO-1)" : pformula,
        buffer_of(r, name, {{"moment elements", state, false}}, kF32));

  // Logits (N, V): the largest activation for any real vocabulary.
  const int64_t logits = buffer_of(r, "logits", {B, T, d.V}, kF32);
  add("logits", BT + "*model.vocab_size*4 B", logits);

  // Per-layer activations kept for backward (core/model.h: res_ is (L+1, N, C), the rest (L, ...)).
  const Factor L1{"(model.n_layer+1)", sum(r, "activation", {d.L.value, 1}), false};
  const Factor two{"2", 2, false};
  const std::string what = "activation";
  auto times = [&](int64_t k, int64_t bytes) {
    return product(r, what, {{std::to_string(k), k, false}, {"bytes", bytes, false}});
  };
  const int64_t layer = sum(r, what,
                            {buffer_of(r, what, {L1, B, T, d.C}, kF32),             // res
                             times(3, buffer_of(r, what, {d.L, B, T, d.C}, kF32)),  // resmid, ln1, ln2
                             times(2, buffer_of(r, what, {d.L, B, T}, kF32)),       // rstd1, rstd2
                             buffer_of(r, what, {d.L, B, T, d.QKV}, kF32),          // qkv
                             buffer_of(r, what, {d.L, B, T, d.NH, d.HS}, kF32),     // att
                             buffer_of(r, what, {d.L, B, T, d.NH}, kF32),           // lse
                             buffer_of(r, what, {d.L, B, T, two, d.F}, kF32),       // gu
                             buffer_of(r, what, {d.L, B, T, d.F}, kF32)});          // act
  const int64_t width = sum(r, what, {times(5, d.C.value), d.QKV.value, d.NH.value, 2, times(3, d.F.value)});
  add("layer activations", "model.n_layer*" + BT + "*" + std::to_string(width) + "*4 B", layer);

  // Final norm, loss and backward scratch, each (N, width) once.
  const int64_t scratch = sum(r, what,
                              {buffer_of(r, what, {B, T}, kI32),                   // inputs
                               times(4, buffer_of(r, what, {B, T, d.C}, kF32)),    // lnf, proj, dres, dln
                               buffer_of(r, what, {B, T, d.NH, d.HS}, kF32),       // datt
                               times(2, buffer_of(r, what, {B, T}, kF32)),         // rstdf, losses
                               buffer_of(r, what, {B, T, d.QKV}, kF32),            // dqkv
                               buffer_of(r, what, {B, T, two, d.F}, kF32),         // dgu
                               buffer_of(r, what, {B, T, d.F}, kF32)});            // dact
  add("head and backward scratch", BT + "*(5*model.d_model+3*model.d_ff+...)*4 B", scratch);

  const Factor half{"head_dim/2", d.HS.value / 2, false};
  const int64_t rope = times(2, buffer_of(r, "RoPE table", {d.maxT, half}, kF32));
  add("RoPE tables", "2*model.max_seq_len*head_dim/2*4 B", rope);
  int64_t ce = 0;  // vocabulary-parallel cross-entropy: row max (N), gathered (tp, N), sums (2, N)
  if (par.tp > 1) {
    ce = buffer_of(r, what, {B, T, {"(parallel.tp+3)", par.tp + 3, false}}, kF32);
    add("vocab-parallel cross-entropy", BT + "*(parallel.tp+3)*4 B", ce);
  }
  plan.activation_bytes = sum(r, what, {logits, layer, scratch, rope, ce});

  // Host batches: inputs and targets (B, seq_len) int32, for training and for evaluation.
  const Factor Tb{"train.seq_len", tc.seq_len};
  const int64_t batch = product(r, "batch", {two, B, Tb, {"4 B", kI32, false}});
  const bool eval = use != PlanFor::kBench && !r.data.val.empty();
  add("batch buffers", std::string(eval ? "4" : "2") + "*train.micro_batch*train.seq_len*4 B", eval ? times(2, batch) : batch);
  if (use != PlanFor::kBench && tc.sample_tokens > 0)
    add("sampling", "model.vocab_size*8 B", product(r, "sampling", {d.V, {"8 B", kF64, false}}));
  // Resume: global rank 0 reads the whole checkpoint (logical tensors); every rank receives one
  // tensor at a time and cuts its block (core/sharded_state.h).
  if (use == PlanFor::kResume) {
    const Factor Pall{"logical num_params", count_params(r), false};
    if (place.writer)
      add("checkpoint being resumed", "3*num_params*4 B", product(r, "checkpoint", {{"3", 3, false}, Pall, {"4 B", kF32, false}}));
    else
      add("checkpoint tensor being received", "2*model.vocab_size*model.d_model*4 B",
          product(r, "checkpoint", {{"2", 2, false}, {"model.vocab_size", r.model.vocab_size}, d.C, {"4 B", kF32, false}}));
  }
  add("program", "code, libraries and thread buffers", kProgramBytes);

  // train.device = "cuda": the flat buffers and activations live on the GPU (cudaMalloc fails
  // with a one-line ResourceError there); the host holds the init draw (P floats) and, for
  // training, the copies of weights and moments a checkpoint is written from (3P floats).
  if (r.train.device == DeviceKind::kCuda) {
    std::erase_if(plan.items, [](const MemoryItem& it) {
      for (const char* gpu : {"parameters", "gradients", "AdamW m", "AdamW v", "logits", "layer activations",
                              "head and backward scratch", "RoPE tables"})
        if (it.name == gpu) return true;
      return false;
    });
    const int64_t k = use == PlanFor::kBench ? 1 : 4;
    add("host copies (GPU run)", std::string(k == 1 ? "" : "4*") + "num_params*4 B",
        product(r, "host copies", {{std::to_string(k), k, false}, P, {"4 B", kF32, false}}));
  }

  for (const auto& it : plan.items) plan.total_bytes = sum(r, "total buffer", {plan.total_bytes, it.bytes});
  return plan;
}

// ---- available memory -------------------------------------------------------------------

namespace {

// The first number after "<key>" in a "key value" text file (/proc/meminfo, memory.stat);
// nullopt if absent.
std::optional<int64_t> field_of(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0 || line.size() == key.size()) continue;
    const char next = line[key.size()];
    if (next != ' ' && next != ':' && next != '\t') continue;
    long long v = 0;
    if (std::sscanf(line.c_str() + key.size() + 1, " %lld", &v) == 1) return v;
  }
  return std::nullopt;
}

// A single-number file (memory.max, memory.limit_in_bytes); nullopt if absent or "max".
std::optional<int64_t> number_in(const std::string& file) {
  std::ifstream in(file);
  std::string s;
  if (!(in >> s) || s == "max") return std::nullopt;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;  // out of range: no limit
  return v;
}

// The cgroup path of this process for a controller ("" for v2's "0::" line).
std::optional<std::string> cgroup_path(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrls = line.substr(a + 1, b - a - 1);
    if (controller.empty() ? ctrls.empty() && line.compare(0, a, "0") == 0 : ("," + ctrls + ",").find("," + controller + ",") != std::string::npos)
      return line.substr(b + 1);
  }
  return std::nullopt;
}

// Limit minus working set (usage less inactive page cache) of the cgroup, if it has a limit.
std::optional<int64_t> cgroup_available() {
  constexpr int64_t kNoLimit = int64_t{1} << 60;
  struct Layout {
    std::string root, controller, limit, usage, inactive;
  };
  const Layout layouts[] = {{"/sys/fs/cgroup", "", "memory.max", "memory.current", "inactive_file"},
                            {"/sys/fs/cgroup/memory", "memory", "memory.limit_in_bytes", "memory.usage_in_bytes",
                             "total_inactive_file"}};
  std::optional<int64_t> best;
  for (const auto& l : layouts) {
    std::vector<std::string> dirs;
    if (auto p = cgroup_path(l.controller); p && *p != "/") dirs.push_back(l.root + *p);
    dirs.push_back(l.root);  // a cgroup namespace mounts the process's own group at the root
    for (const auto& dir : dirs) {
      const auto limit = number_in(dir + "/" + l.limit);
      if (!limit || *limit >= kNoLimit) continue;
      const int64_t usage = number_in(dir + "/" + l.usage).value_or(0);
      const int64_t inactive = field_of(dir + "/memory.stat", l.inactive).value_or(0);
      const int64_t avail = std::max<int64_t>(0, *limit - std::max<int64_t>(0, usage - inactive));
      best = best ? std::min(*best, avail) : avail;
      break;
    }
  }
  return best;
}

}  // namespace

std::optional<AvailableMemory> available_memory() {
  std::optional<AvailableMemory> out;
  auto consider = [&](std::optional<int64_t> bytes, const char* source) {
    if (bytes && (!out || *bytes < out->bytes)) out = AvailableMemory{*bytes, source};
  };
  if (auto kb = field_of("/proc/meminfo", "MemAvailable")) consider(*kb * 1024, "MemAvailable");
  consider(cgroup_available(), "cgroup memory limit");
  rlimit rl{};
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const int64_t vm = field_of("/proc/self/status", "VmSize").value_or(0) * 1024;
    const int64_t cur = rl.rlim_cur > static_cast<rlim_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(rl.rlim_cur);
    consider(std::max<int64_t>(0, cur - vm), "RLIMIT_AS");
  }
  return out;
}

std::string format_bytes(int64_t bytes) {
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 5) v /= 1024.0, u++;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

void check_memory(const Recipe& r, const MemoryPlan& plan, const AvailableMemory& avail) {
  if (plan.total_bytes <= avail.bytes) return;
  const MemoryItem& big = plan.largest();
  throw ResourceError((r.path.empty() ? "recipe" : r.path) + ": needs " + format_bytes(plan.total_bytes) + " (" +
                      big.name + ": " + big.formula + " = " + format_bytes(big.bytes) + ") but " +
                      format_bytes(avail.bytes) + " is available (" + avail.source + ")");
}

void require_memory(const Recipe& r, PlanFor use, const RankPlace& place) {
  MemoryPlan plan = plan_memory(r, use, place);
  if (place.ranks_on_node > 1) {  // the node's other ranks draw on the same memory
    const MemoryPlan other = plan_memory(r, use, RankPlace{false, 1});
    const int64_t others = place.ranks_on_node - 1;
    int64_t bytes = 0;
    if (__builtin_mul_overflow(others, other.total_bytes, &bytes) ||
        __builtin_add_overflow(plan.total_bytes, bytes, &plan.total_bytes))
      throw ConfigError((r.path.empty() ? "recipe" : r.path) + ": the node's memory need overflows 64-bit integers");
    plan.items.push_back({"the node's other ranks", std::to_string(others) + "*their plan", bytes});
  }
  if (const auto avail = available_memory()) check_memory(r, plan, *avail);
}

}  // namespace ssiat
