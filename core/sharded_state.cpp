// Logical tensors from and to the ranks that hold their parts (contract in core/sharded_state.h).
#include "core/sharded_state.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

namespace ssiat {

namespace fs = std::filesystem;

namespace {
constexpr const char* kGroups[3] = {"param/", "adam_m/", "adam_v/"};
}  // namespace

void Assembler::assemble(const ParamView& v, int group, float* dst) {
  const bool dp_root = ranks_.dp->rank() == 0;
  // This rank's flat buffer, where it contributes (HostState keeps only those on a GPU).
  const float* local = nullptr;
  if (group == 0 && dp_root) local = state_.params();
  if (group != 0 && (dp_root || dpar_.zero1())) local = group == 1 ? state_.m() : state_.v();
  const int tp = ranks_.tp->size();
  // Stage 1: this tp rank's block, on dp rank 0 of its group (into dst directly when whole).
  float* block = tp == 1 ? dst : (block_.resize(static_cast<size_t>(v.numel)), block_.data());
  if (group == 0) {
    if (dp_root && v.numel > 0) std::memcpy(block, local + v.offset, static_cast<size_t>(v.numel) * sizeof(float));
  } else {
    dpar_.gather_state(local, v.offset, v.numel, dp_root ? block : nullptr, 0);
  }
  if (tp == 1 || !dp_root) return;
  // Stage 2 (the tp group of dp rank 0): each tp rank's block, placed by its geometry.
  const int64_t rows = v.shape.size() == 2 ? v.shape[0] : 1, cols = v.shape.back();
  const bool root = ranks_.root();
  for (int t = 0; t < tp; t++) {
    const distributed::Block b = ranks_.layout->block(rows, cols, v.shard, t);
    const int64_t n = b.rows.length * b.cols.length;
    const float* piece = block;
    if (t != 0) {
      if (v.shard == distributed::ShardKind::kReplicated) break;  // tp rank 0's block is whole
      piece_.resize(static_cast<size_t>(n));
      if (ranks_.tp->rank() == t) std::memcpy(piece_.data(), block, static_cast<size_t>(n) * sizeof(float));
      ranks_.tp->broadcast(piece_.data(), static_cast<size_t>(n), distributed::DType::kF32, t);
      piece = piece_.data();
    }
    if (!root) continue;
    for (int64_t r = 0; r < b.rows.length; r++)
      std::memcpy(dst + (b.rows.start + r) * cols + b.cols.start, piece + r * b.cols.length,
                  static_cast<size_t>(b.cols.length) * sizeof(float));
  }
}

// The checkpoint's tensors, for the writer (global rank 0): direct pointers when it holds them
// all, else fetched (assembled) one tensor at a time while the writer works; the other ranks run
// serve_checkpoint_gathers alongside.
std::vector<CheckpointTensor> checkpoint_tensors(const Llama<float>& model, HostState& state, Assembler& as) {
  state.pull();
  std::vector<CheckpointTensor> out;
  for (const auto& v : model.views())
    for (int g = 0; g < 3; g++) {
      if (!as.needed()) {
        float* base = g == 0 ? state.params() : g == 1 ? state.m() : state.v();
        out.push_back({kGroups[g] + v.name, v.shape, base + v.offset, {}});
      } else {
        out.push_back({kGroups[g] + v.name, v.shape, nullptr, [&as, &v, g](float* dst) { as.assemble(v, g, dst); }});
      }
    }
  return out;
}

// The other ranks' side of checkpoint_tensors: the same assembly, in the writer's order.
void serve_checkpoint_gathers(const Llama<float>& model, HostState& state, Assembler& as) {
  state.pull();
  if (!as.needed()) return;
  for (const auto& v : model.views())
    for (int g = 0; g < 3; g++) as.assemble(v, g, nullptr);
}

// Resume: global rank 0 has read and verified the checkpoint (`ck`, null elsewhere) and checks
// it holds exactly the model's tensors (logical shapes); each tensor is then broadcast from it
// in views() order, and every rank keeps its part: its tp block of the weights, and of the
// moments its share (DataParallel::take_state).
void restore_tensors(const LoadedCheckpoint* ck, const Llama<float>& model, HostState& state, DataParallel& dpar,
                     distributed::Communicator& world, const fs::path& dir) {
  if (ck) {
    std::map<std::string, std::vector<int64_t>> expected;
    for (const auto& v : model.views())
      for (const char* group : kGroups) expected[group + v.name] = v.shape;
    check_checkpoint_tensors(*ck, expected, dir);
  }
  std::vector<float> buf, block;
  for (const auto& v : model.views()) {
    int64_t n = 1;
    for (int64_t d : v.shape) n *= d;
    for (int g = 0; g < 3; g++) {
      float* whole = nullptr;
      if (ck) {
        whole = const_cast<float*>(ck->tensors.at(kGroups[g] + v.name).data());  // broadcast leaves the root's data as is
      } else {
        buf.resize(static_cast<size_t>(n));
        whole = buf.data();
      }
      world.broadcast(whole, static_cast<size_t>(n), distributed::DType::kF32, 0);
      // This rank's block, rows [r0, r1) x cols [c0, c1) of the logical (rows, cols) tensor.
      const int64_t cols = v.shape.back();
      block.resize(static_cast<size_t>(v.numel));
      for (int64_t r = 0; r < v.block.rows.length; r++)
        std::memcpy(block.data() + r * v.block.cols.length, whole + (v.block.rows.start + r) * cols + v.block.cols.start,
                    static_cast<size_t>(v.block.cols.length) * sizeof(float));
      if (g == 0) std::copy(block.begin(), block.end(), state.params() + v.offset);
      else dpar.take_state(block.data(), v.offset, v.numel, g == 1 ? state.m() : state.v());
    }
  }
  state.push();
}

}  // namespace ssiat
