// The device mesh (distributed/mesh.h): rank arithmetic and groups for dp2×tp2, dp4, tp4 and
// dp1×tp1 against hand-written tables; MPI_Comm_split simulated from the colors and keys; every
// sharded dimension covered exactly once for tp ∈ {1, 2, 4}; the fused [q|k|v] and [gate|up]
// row ranges per rank, by hand and as a partition; every validation message, word for word.
#include "distributed/mesh.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/check.h"

namespace ssiat::distributed {
namespace {

// A Llama-like model that every tp in {1, 2, 4} divides: NH 8, NKV 4, F 24, V 260.
constexpr ShardedDims kDims{8, 4, 24, 260};

struct RankRow {
  int rank, dp_rank, tp_rank;
  std::vector<int> tp_group, dp_group;
};

void expect_table(const Layout& l, const std::vector<RankRow>& table) {
  ASSERT_EQ(static_cast<int>(table.size()), l.world_size());
  for (const auto& row : table) {
    SCOPED_TRACE(l.describe() + " rank " + std::to_string(row.rank));
    EXPECT_EQ(l.dp_rank(row.rank), row.dp_rank);
    EXPECT_EQ(l.tp_rank(row.rank), row.tp_rank);
    EXPECT_EQ(l.global_rank(row.dp_rank, row.tp_rank), row.rank);
    EXPECT_EQ(l.tp_group(row.rank), row.tp_group);
    EXPECT_EQ(l.dp_group(row.rank), row.dp_group);
  }
}

TEST(Mesh, RankArithmeticDp2Tp2) {
  const Layout l(4, 2, 2, kDims);
  EXPECT_EQ(l.describe(), "dp 2 x tp 2 (world 4)");
  // tp ranks adjacent: ranks 0, 1 are one replica, 2, 3 the other.
  expect_table(l, {{0, 0, 0, {0, 1}, {0, 2}},
                   {1, 0, 1, {0, 1}, {1, 3}},
                   {2, 1, 0, {2, 3}, {0, 2}},
                   {3, 1, 1, {2, 3}, {1, 3}}});
}

TEST(Mesh, RankArithmeticDp4) {
  const Layout l(4, 4, 1, kDims);
  expect_table(l, {{0, 0, 0, {0}, {0, 1, 2, 3}},
                   {1, 1, 0, {1}, {0, 1, 2, 3}},
                   {2, 2, 0, {2}, {0, 1, 2, 3}},
                   {3, 3, 0, {3}, {0, 1, 2, 3}}});
}

TEST(Mesh, RankArithmeticTp4) {
  const Layout l(4, 1, 4, kDims);
  expect_table(l, {{0, 0, 0, {0, 1, 2, 3}, {0}},
                   {1, 0, 1, {0, 1, 2, 3}, {1}},
                   {2, 0, 2, {0, 1, 2, 3}, {2}},
                   {3, 0, 3, {0, 1, 2, 3}, {3}}});
}

TEST(Mesh, RankArithmeticDp1Tp1) {
  const Layout l(1, 1, 1, kDims);
  expect_table(l, {{0, 0, 0, {0}, {0}}});
  EXPECT_EQ(l.tp_group_color(0), 0);
  EXPECT_EQ(l.dp_group_color(0), 0);
}

// MPI_Comm_split semantics: ranks with one color form a group, ordered by (key, world rank).
std::vector<int> split_group(int world, int rank, int (*color)(const Layout&, int), int (*key)(const Layout&, int),
                             const Layout& l) {
  std::vector<std::pair<int, int>> members;  // (key, world rank)
  for (int r = 0; r < world; r++)
    if (color(l, r) == color(l, rank)) members.push_back({key(l, r), r});
  std::sort(members.begin(), members.end());
  std::vector<int> g;
  for (const auto& [k, r] : members) g.push_back(r);
  return g;
}

TEST(Mesh, CommSplitColorsAndKeysBuildTheGroups) {
  for (auto [dp, tp] : std::vector<std::pair<int, int>>{{1, 1}, {2, 2}, {4, 1}, {1, 4}, {2, 4}, {3, 2}}) {
    const Layout l(dp * tp, dp, tp, kDims);
    for (int r = 0; r < l.world_size(); r++) {
      SCOPED_TRACE(l.describe() + " rank " + std::to_string(r));
      const auto tpg = split_group(
          l.world_size(), r, [](const Layout& m, int x) { return m.tp_group_color(x); },
          [](const Layout& m, int x) { return m.tp_group_key(x); }, l);
      const auto dpg = split_group(
          l.world_size(), r, [](const Layout& m, int x) { return m.dp_group_color(x); },
          [](const Layout& m, int x) { return m.dp_group_key(x); }, l);
      EXPECT_EQ(tpg, l.tp_group(r));
      EXPECT_EQ(dpg, l.dp_group(r));
      // The rank inside each sub-communicator is its tp / dp rank.
      EXPECT_EQ(std::find(tpg.begin(), tpg.end(), r) - tpg.begin(), l.tp_rank(r));
      EXPECT_EQ(std::find(dpg.begin(), dpg.end(), r) - dpg.begin(), l.dp_rank(r));
      EXPECT_GE(l.tp_group_color(r), 0);  // MPI_Comm_split wants non-negative colors
      EXPECT_GE(l.dp_group_color(r), 0);
    }
  }
}

TEST(Mesh, RanksOutsideTheWorldThrow) {
  const Layout l(4, 2, 2, kDims);
  EXPECT_THROW(l.dp_rank(4), Error);
  EXPECT_THROW(l.tp_rank(-1), Error);
  EXPECT_THROW(l.tp_group(4), Error);
  EXPECT_THROW(l.dp_group(-1), Error);
  EXPECT_THROW(l.global_rank(2, 0), Error);
  EXPECT_THROW(l.global_rank(0, 2), Error);
  EXPECT_THROW(l.shard(8, 2), Error);
  EXPECT_THROW(l.shard(7, 0), Error);  // not a multiple of tp
  EXPECT_THROW(l.qkv_rows(0, 0), Error);
  try {
    l.tp_rank(9);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 9 is outside [0, 4) of dp 2 x tp 2 (world 4)"), std::string::npos)
        << e.what();
  }
}

// The slices of tp ranks 0..tp-1, in order, tile [0, n) with no gap and no overlap, each of
// length n / tp.
void expect_tiles(const std::vector<DimSlice>& slices, int64_t n) {
  int64_t next = 0;
  for (const auto& s : slices) {
    EXPECT_EQ(s.start, next);
    EXPECT_EQ(s.length, n / static_cast<int64_t>(slices.size()));
    next = s.end();
  }
  EXPECT_EQ(next, n);
}

TEST(Mesh, SlicesCoverEachDimensionExactlyOnce) {
  for (int tp : {1, 2, 4}) {
    SCOPED_TRACE("tp " + std::to_string(tp));
    const Layout l(tp, 1, tp, kDims);
    std::vector<DimSlice> heads, kv, ff, vocab, any;
    for (int t = 0; t < tp; t++) {
      heads.push_back(l.head_slice(t));
      kv.push_back(l.kv_head_slice(t));
      ff.push_back(l.ff_slice(t));
      vocab.push_back(l.vocab_slice(t));
      any.push_back(l.shard(96, t));
    }
    expect_tiles(heads, 8);
    expect_tiles(kv, 4);
    expect_tiles(ff, 24);
    expect_tiles(vocab, 260);
    expect_tiles(any, 96);
  }
  const Layout l4(4, 1, 4, kDims);
  EXPECT_EQ(l4.vocab_slice(2), (DimSlice{130, 65}));
  EXPECT_EQ(l4.head_slice(3), (DimSlice{6, 2}));
  EXPECT_EQ(l4.kv_head_slice(1), (DimSlice{1, 1}));
  EXPECT_EQ(l4.ff_slice(1), (DimSlice{6, 6}));
}

TEST(Mesh, ColumnShardsSplitRowsAndRowShardsSplitColumns) {
  // q_proj (NH*HS, C) = (16, 6) column-parallel; o_proj (C, NH*HS) = (6, 16) row-parallel.
  const Layout l(2, 1, 2, kDims);
  EXPECT_EQ(l.block(16, 6, ShardKind::kColumn, 1), (Block{{8, 8}, {0, 6}}));
  EXPECT_EQ(l.block(6, 16, ShardKind::kRow, 1), (Block{{0, 6}, {8, 8}}));
  EXPECT_EQ(l.block(6, 1, ShardKind::kReplicated, 1), (Block{{0, 6}, {0, 1}}));
  EXPECT_THROW(l.block(7, 6, ShardKind::kColumn, 0), Error);
  EXPECT_THROW(l.block(6, 7, ShardKind::kRow, 0), Error);
  for (int tp : {1, 2, 4}) {
    const Layout m(tp, 1, tp, kDims);
    std::vector<DimSlice> rows, cols;
    for (int t = 0; t < tp; t++) {
      const Block c = m.block(24, 6, ShardKind::kColumn, t), r = m.block(6, 24, ShardKind::kRow, t);
      EXPECT_EQ(c.cols, (DimSlice{0, 6}));
      EXPECT_EQ(r.rows, (DimSlice{0, 6}));
      rows.push_back(c.rows);
      cols.push_back(r.cols);
    }
    expect_tiles(rows, 24);
    expect_tiles(cols, 24);
  }
}

TEST(Mesh, FusedQkvRowsPerRankByHand) {
  // NH 8, NKV 4, HS 2: (QKV, C) has q rows [0, 16), k rows [16, 24), v rows [24, 32).
  const Layout tp2(2, 1, 2, kDims);
  EXPECT_EQ(tp2.qkv_rows(0, 2), (std::array<DimSlice, 3>{DimSlice{0, 8}, DimSlice{16, 4}, DimSlice{24, 4}}));
  EXPECT_EQ(tp2.qkv_rows(1, 2), (std::array<DimSlice, 3>{DimSlice{8, 8}, DimSlice{20, 4}, DimSlice{28, 4}}));
  const Layout tp4(4, 1, 4, kDims);
  EXPECT_EQ(tp4.qkv_rows(3, 2), (std::array<DimSlice, 3>{DimSlice{12, 4}, DimSlice{22, 2}, DimSlice{30, 2}}));
  const Layout tp1(1, 1, 1, kDims);
  EXPECT_EQ(tp1.qkv_rows(0, 2), (std::array<DimSlice, 3>{DimSlice{0, 16}, DimSlice{16, 8}, DimSlice{24, 8}}));
  // F 24: (2F, C) has gate rows [0, 24), up rows [24, 48).
  EXPECT_EQ(tp4.gate_up_rows(2), (std::array<DimSlice, 2>{DimSlice{12, 6}, DimSlice{36, 6}}));
  EXPECT_EQ(tp1.gate_up_rows(0), (std::array<DimSlice, 2>{DimSlice{0, 24}, DimSlice{24, 24}}));
}

TEST(Mesh, FusedRowsPartitionTheWeightAndFormTheLocalLayout) {
  for (const ShardedDims dims : {kDims, ShardedDims{8, 8, 24, 260}, ShardedDims{12, 4, 8, 12}}) {
    for (int tp : {1, 2, 4}) {
      if (dims.n_head % tp || dims.n_kv_head % tp) continue;
      SCOPED_TRACE("NH " + std::to_string(dims.n_head) + " NKV " + std::to_string(dims.n_kv_head) + " tp " +
                   std::to_string(tp));
      const Layout l(tp, 1, tp, dims);
      const int64_t hs = 4, nh = dims.n_head, nkv = dims.n_kv_head, f = dims.d_ff;
      std::vector<int> owner_qkv(static_cast<size_t>((nh + 2 * nkv) * hs), -1), owner_gu(static_cast<size_t>(2 * f), -1);
      for (int t = 0; t < tp; t++) {
        const auto qkv = l.qkv_rows(t, hs);
        // The local [q|k|v] is the one-rank layout with NH/tp and NKV/tp heads.
        EXPECT_EQ(qkv[0].length, nh / tp * hs);
        EXPECT_EQ(qkv[1].length, nkv / tp * hs);
        EXPECT_EQ(qkv[2].length, nkv / tp * hs);
        for (const DimSlice& s : qkv)
          for (int64_t i = s.start; i < s.end(); i++) {
            EXPECT_EQ(owner_qkv[static_cast<size_t>(i)], -1) << "row " << i << " owned twice";
            owner_qkv[static_cast<size_t>(i)] = t;
          }
        // Each local query head reads a kv head of the same rank (GQA: kv = q / (NH/NKV)).
        const DimSlice h = l.head_slice(t), kv = l.kv_head_slice(t);
        for (int64_t q = h.start; q < h.end(); q++) {
          const int64_t k = q / (nh / nkv);
          EXPECT_TRUE(k >= kv.start && k < kv.end()) << "q head " << q << " kv head " << k;
        }
        const auto gu = l.gate_up_rows(t);
        EXPECT_EQ(gu[0].length, f / tp);
        EXPECT_EQ(gu[1].start - gu[0].start, f);  // up row i+F pairs with gate row i
        for (const DimSlice& s : gu)
          for (int64_t i = s.start; i < s.end(); i++) {
            EXPECT_EQ(owner_gu[static_cast<size_t>(i)], -1) << "row " << i << " owned twice";
            owner_gu[static_cast<size_t>(i)] = t;
          }
      }
      EXPECT_EQ(std::count(owner_qkv.begin(), owner_qkv.end(), -1), 0);
      EXPECT_EQ(std::count(owner_gu.begin(), owner_gu.end(), -1), 0);
    }
  }
}

std::string error_of(int64_t world, int64_t dp, int64_t tp, const ShardedDims& dims) {
  try {
    Layout l(world, dp, tp, dims);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Mesh, EveryBadLayoutIsNamedWithItsValues) {
  EXPECT_EQ(error_of(6, 2, 2, kDims), "world size 6 != parallel.dp * parallel.tp = 2 * 2 = 4");
  EXPECT_EQ(error_of(0, 1, 1, kDims), "world size 0 != parallel.dp * parallel.tp = 1 * 1 = 1");
  EXPECT_EQ(error_of(4, 0, 4, kDims), "parallel.dp = 0 must be >= 1");
  EXPECT_EQ(error_of(4, -2, 4, kDims), "parallel.dp = -2 must be >= 1");
  EXPECT_EQ(error_of(4, 4, 0, kDims), "parallel.tp = 0 must be >= 1");
  EXPECT_EQ(error_of(4, 65536, 32768, kDims),
            "parallel.dp * parallel.tp = 65536 * 32768 exceeds the largest MPI world size 2147483647");
  EXPECT_EQ(error_of(3, 1, 3, kDims), "parallel.tp = 3 does not divide model.n_head = 8");
  EXPECT_EQ(error_of(8, 1, 8, kDims), "parallel.tp = 8 does not divide model.n_kv_head = 4");
  EXPECT_EQ(error_of(4, 1, 4, ShardedDims{8, 4, 22, 260}), "parallel.tp = 4 does not divide model.d_ff = 22");
  EXPECT_EQ(error_of(4, 1, 4, ShardedDims{8, 4, 24, 258}), "parallel.tp = 4 does not divide model.vocab_size = 258");
  EXPECT_EQ(error_of(2, 1, 2, ShardedDims{0, 4, 24, 260}), "model.n_head = 0 must be >= 1");
  EXPECT_EQ(error_of(2, 1, 2, ShardedDims{8, 0, 24, 260}), "model.n_kv_head = 0 must be >= 1");
  EXPECT_EQ(error_of(2, 1, 2, ShardedDims{8, 4, -1, 260}), "model.d_ff = -1 must be >= 1");
  EXPECT_EQ(error_of(2, 1, 2, ShardedDims{8, 4, 24, 0}), "model.vocab_size = 0 must be >= 1");
  // The layout rules come before the world size: a recipe reports the same first problem.
  EXPECT_EQ(error_of(5, 1, 3, kDims), "parallel.tp = 3 does not divide model.n_head = 8");
}

TEST(Mesh, LayoutProblemNamesTheKeyToBlame) {
  EXPECT_FALSE(layout_problem(2, 4, kDims).has_value());
  const auto dp = layout_problem(0, 1, kDims);
  ASSERT_TRUE(dp.has_value());
  EXPECT_EQ(dp->key, "parallel.dp");
  const auto tp = layout_problem(1, 3, kDims);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->key, "parallel.tp");
  EXPECT_EQ(tp->message, "parallel.tp = 3 does not divide model.n_head = 8");
  const auto too_big = layout_problem(INT32_MAX, 2, kDims);
  ASSERT_TRUE(too_big.has_value());
  EXPECT_EQ(too_big->key, "parallel.tp");
  const auto heads = layout_problem(1, 1, ShardedDims{0, 1, 1, 1});
  ASSERT_TRUE(heads.has_value());
  EXPECT_EQ(heads->key, "model.n_head");
  // The largest world MPI can count is accepted.
  EXPECT_FALSE(layout_problem(INT32_MAX, 1, kDims).has_value());
}

}  // namespace
}  // namespace ssiat::distributed
