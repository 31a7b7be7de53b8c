// The device mesh of data × tensor parallelism (../shared/DESIGN.md "Parallelism"): which ranks
// form each group and which slice of every sharded dimension each rank holds. Pure arithmetic,
// no MPI: the trainer builds its communicators from the colors and keys given here.
//
// World = dp × tp ranks, tp ranks adjacent (fastest varying), so that a tp group sits inside a
// node:   global rank g = dp_rank * tp + tp_rank;   dp_rank = g / tp;   tp_rank = g % tp.
//   tp group of g: {dp_rank * tp + t : t = 0 .. tp-1}   (one model replica, tensor-sharded)
//   dp group of g: {d * tp + tp_rank : d = 0 .. dp-1}   (the ranks holding the same shard)
// MPI_Comm_split(world, color, key): tp groups use color dp_rank and key tp_rank, dp groups
// color tp_rank and key dp_rank, so a rank's rank inside each group is its tp_rank / dp_rank.
//
// Sharding (Megatron-LM, Shoeybi et al. 2019, arXiv:1909.08053): every sharded dimension is a
// multiple of tp (checked on construction), so tp rank t holds the even slice
// [t·n/tp, (t+1)·n/tp) of a dimension of size n. A (rows, cols) weight Y = X·Aᵀ is
//   column-parallel (q/k/v, gate/up, vocab-parallel embedding and lm_head): rows sharded,
//   row-parallel (o_proj, down_proj): cols sharded, the partial outputs summed over tp.
// Heads go whole: rank t owns query heads [t·NH/tp, (t+1)·NH/tp) and kv heads
// [t·NKV/tp, (t+1)·NKV/tp); since NH/NKV query heads share one kv head, a rank's query heads
// read only its own kv heads. In the fused (QKV = (NH + 2·NKV)·HS, C) and (2F, C) weights a rank
// owns several row ranges (qkv_rows, gate_up_rows) which, stacked in order, form its local
// [q|k|v] and [gate|up] matrices: the one-rank layout with NH/tp, NKV/tp and F/tp.
//
// Contract: Layout is an immutable value; its constructor throws ssiat::Error with one line that
// names the bad value and the rule ("parallel.tp = 3 does not divide model.n_head = 8",
// "world size 6 != parallel.dp * parallel.tp = 2 * 2 = 4"). Accessors given a rank outside
// [0, world) or a tp rank outside [0, tp) throw ssiat::Error (SSIAT_CHECK).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ssiat::distributed {

// The model dimensions tensor parallelism shards (values of the recipe's [model] keys).
struct ShardedDims {
  int64_t n_head = 1;      // NH: query heads
  int64_t n_kv_head = 1;   // NKV: key/value heads
  int64_t d_ff = 1;        // F: MLP width
  int64_t vocab_size = 1;  // V: embedding and lm_head rows
  bool operator==(const ShardedDims&) const = default;
};

// A half-open index range [start, start + length) of one dimension.
struct DimSlice {
  int64_t start = 0;
  int64_t length = 0;
  int64_t end() const { return start + length; }
  bool operator==(const DimSlice&) const = default;
};

// How a parameter is split over the tp group.
enum class ShardKind {
  kReplicated,  // every tp rank holds the whole tensor (norms)
  kColumn,      // dim 0 (rows, the output features) sharded
  kRow,         // dim 1 (columns, the input features) sharded
};

// The part of a (rows, cols) matrix that one rank holds.
struct Block {
  DimSlice rows;
  DimSlice cols;
  bool operator==(const Block&) const = default;
};

// A broken layout rule: the recipe key to blame and the one-line message naming the values.
struct LayoutProblem {
  std::string key;      // "parallel.dp" or "parallel.tp"
  std::string message;  // "parallel.tp = 3 does not divide model.n_head = 8"
};

// The first rule (dp, tp, dims) break, nullopt when none: dp >= 1, tp >= 1, dp·tp fits an MPI
// rank count (int), every dims value >= 1, and tp divides n_head, n_kv_head, d_ff and
// vocab_size (in that order). Everything Layout checks except the world size, which is known
// only at launch; recipes validate with this, so both give the same messages.
std::optional<LayoutProblem> layout_problem(int64_t dp, int64_t tp, const ShardedDims& dims);

class Layout {
 public:
  // world_size: the number of launched ranks, which must equal dp · tp.
  Layout(int64_t world_size, int64_t dp, int64_t tp, const ShardedDims& dims);

  int world_size() const { return dp_ * tp_; }
  int dp() const { return dp_; }
  int tp() const { return tp_; }
  const ShardedDims& dims() const { return dims_; }
  std::string describe() const;  // "dp 2 x tp 2 (world 4)"

  // ---- ranks and groups (global ranks in [0, world)) ----
  int dp_rank(int rank) const;
  int tp_rank(int rank) const;
  int global_rank(int dp_rank, int tp_rank) const;
  std::vector<int> tp_group(int rank) const;  // the tp group's global ranks, in tp_rank order
  std::vector<int> dp_group(int rank) const;  // the dp group's global ranks, in dp_rank order
  int tp_group_color(int rank) const { return dp_rank(rank); }
  int tp_group_key(int rank) const { return tp_rank(rank); }
  int dp_group_color(int rank) const { return tp_rank(rank); }
  int dp_group_key(int rank) const { return dp_rank(rank); }

  // ---- slices, by tp rank in [0, tp) ----
  // The even slice of a dimension of size n (n must be a multiple of tp).
  DimSlice shard(int64_t n, int tp_rank) const;
  DimSlice head_slice(int tp_rank) const { return shard(dims_.n_head, tp_rank); }       // query heads
  DimSlice kv_head_slice(int tp_rank) const { return shard(dims_.n_kv_head, tp_rank); }  // kv heads
  DimSlice ff_slice(int tp_rank) const { return shard(dims_.d_ff, tp_rank); }            // MLP features
  DimSlice vocab_slice(int tp_rank) const { return shard(dims_.vocab_size, tp_rank); }   // token ids
  // The block of a (rows, cols) weight held by tp rank t: all of it (kReplicated), rows sharded
  // (kColumn) or cols sharded (kRow).
  Block block(int64_t rows, int64_t cols, ShardKind kind, int tp_rank) const;
  // Global rows of the fused (QKV, C) weight that tp rank t holds, in local order: its heads'
  // q rows, then its kv heads' k rows, then their v rows. head_dim = HS = C / NH.
  std::array<DimSlice, 3> qkv_rows(int tp_rank, int64_t head_dim) const;
  // Global rows of the fused (2F, C) [gate|up] weight that tp rank t holds: gate, then up.
  std::array<DimSlice, 2> gate_up_rows(int tp_rank) const;

  bool operator==(const Layout&) const = default;

 private:
  void check_rank(int rank) const;
  void check_tp_rank(int tp_rank) const;

  int dp_ = 1;
  int tp_ = 1;
  ShardedDims dims_;
};

}  // namespace ssiat::distributed
