// The device mesh (contract and rank/shard formulas: distributed/mesh.h). Validation messages
// name the recipe key, its value and the rule; layout_problem() is the one list of rules, so a
// recipe (core/recipe.cpp) and a launched Layout report a bad layout in the same words.
#include "distributed/mesh.h"

#include <climits>
#include <string>
#include <utility>

#include "kernels/check.h"

namespace ssiat::distributed {

std::optional<LayoutProblem> layout_problem(int64_t dp, int64_t tp, const ShardedDims& dims) {
  if (dp < 1) return LayoutProblem{"parallel.dp", "parallel.dp = " + std::to_string(dp) + " must be >= 1"};
  if (tp < 1) return LayoutProblem{"parallel.tp", "parallel.tp = " + std::to_string(tp) + " must be >= 1"};
  if (dp > INT_MAX / tp)
    return LayoutProblem{"parallel.tp", "parallel.dp * parallel.tp = " + std::to_string(dp) + " * " + std::to_string(tp) +
                                            " exceeds the largest MPI world size " + std::to_string(INT_MAX)};
  const std::pair<const char*, int64_t> sharded[] = {
      {"model.n_head", dims.n_head}, {"model.n_kv_head", dims.n_kv_head},
      {"model.d_ff", dims.d_ff},     {"model.vocab_size", dims.vocab_size}};
  for (const auto& [key, v] : sharded)
    if (v < 1) return LayoutProblem{key, std::string(key) + " = " + std::to_string(v) + " must be >= 1"};
  for (const auto& [key, v] : sharded)
    if (v % tp != 0)
      return LayoutProblem{"parallel.tp", "parallel.tp = " + std::to_string(tp) + " does not divide " + key + " = " +
                                              std::to_string(v)};
  return std::nullopt;
}

Layout::Layout(int64_t world_size, int64_t dp, int64_t tp, const ShardedDims& dims) {
  if (const auto p = layout_problem(dp, tp, dims)) throw Error(p->message);
  if (world_size != dp * tp)
    throw Error("world size " + std::to_string(world_size) + " != parallel.dp * parallel.tp = " + std::to_string(dp) +
                " * " + std::to_string(tp) + " = " + std::to_string(dp * tp));
  dp_ = static_cast<int>(dp);
  tp_ = static_cast<int>(tp);
  dims_ = dims;
}

std::string Layout::describe() const {
  return "dp " + std::to_string(dp_) + " x tp " + std::to_string(tp_) + " (world " + std::to_string(world_size()) + ")";
}

void Layout::check_rank(int rank) const {
  SSIAT_CHECK(rank >= 0 && rank < world_size()) << "Layout: rank " << rank << " is outside [0, " << world_size()
                                                << ") of " << describe();
}

void Layout::check_tp_rank(int tp_rank) const {
  SSIAT_CHECK(tp_rank >= 0 && tp_rank < tp_) << "Layout: tp rank " << tp_rank << " is outside [0, " << tp_ << ") of "
                                             << describe();
}

int Layout::dp_rank(int rank) const {
  check_rank(rank);
  return rank / tp_;
}

int Layout::tp_rank(int rank) const {
  check_rank(rank);
  return rank % tp_;
}

int Layout::global_rank(int dp_rank, int tp_rank) const {
  SSIAT_CHECK(dp_rank >= 0 && dp_rank < dp_) << "Layout: dp rank " << dp_rank << " is outside [0, " << dp_ << ") of "
                                             << describe();
  check_tp_rank(tp_rank);
  return dp_rank * tp_ + tp_rank;
}

std::vector<int> Layout::tp_group(int rank) const {
  const int d = dp_rank(rank);
  std::vector<int> g(static_cast<size_t>(tp_));
  for (int t = 0; t < tp_; t++) g[static_cast<size_t>(t)] = d * tp_ + t;
  return g;
}

std::vector<int> Layout::dp_group(int rank) const {
  const int t = tp_rank(rank);
  std::vector<int> g(static_cast<size_t>(dp_));
  for (int d = 0; d < dp_; d++) g[static_cast<size_t>(d)] = d * tp_ + t;
  return g;
}

DimSlice Layout::shard(int64_t n, int tp_rank) const {
  check_tp_rank(tp_rank);
  SSIAT_CHECK(n >= 0 && n % tp_ == 0) << "Layout::shard: dimension " << n << " is not a multiple of tp = " << tp_;
  const int64_t len = n / tp_;
  return {tp_rank * len, len};
}

Block Layout::block(int64_t rows, int64_t cols, ShardKind kind, int tp_rank) const {
  check_tp_rank(tp_rank);
  SSIAT_CHECK(rows >= 0 && cols >= 0) << "Layout::block: shape (" << rows << ", " << cols << ")";
  switch (kind) {
    case ShardKind::kReplicated: return {{0, rows}, {0, cols}};
    case ShardKind::kColumn: return {shard(rows, tp_rank), {0, cols}};
    case ShardKind::kRow: return {{0, rows}, shard(cols, tp_rank)};
  }
  SSIAT_CHECK(false) << "Layout::block: unknown ShardKind " << static_cast<int>(kind);
  return {};
}

std::array<DimSlice, 3> Layout::qkv_rows(int tp_rank, int64_t head_dim) const {
  SSIAT_CHECK(head_dim >= 1) << "Layout::qkv_rows: head_dim = " << head_dim;
  const DimSlice h = head_slice(tp_rank), kv = kv_head_slice(tp_rank);
  const int64_t q_rows = dims_.n_head * head_dim, kv_rows = dims_.n_kv_head * head_dim;
  return {DimSlice{h.start * head_dim, h.length * head_dim},
          DimSlice{q_rows + kv.start * head_dim, kv.length * head_dim},
          DimSlice{q_rows + kv_rows + kv.start * head_dim, kv.length * head_dim}};
}

std::array<DimSlice, 2> Layout::gate_up_rows(int tp_rank) const {
  const DimSlice f = ff_slice(tp_rank);
  return {f, DimSlice{dims_.d_ff + f.start, f.length}};
}

}  // namespace ssiat::distributed
