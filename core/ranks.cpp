// Joining the job, communicators and start-up agreement (contract in core/ranks.h).
#include "core/ranks.h"

#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/hash.h"
#include "core/run_lock.h"

namespace ssiat {

namespace dist = distributed;

void make_device_comms(Ranks& ranks, const Backend& be) {
  if (be.kind() != DeviceKind::kCuda) return;
  if (ranks.tp->size() > 1) ranks.tp_device = dist::make_nccl_communicator(*ranks.tp, be.device().ordinal, be.stream());
  if (ranks.dp->size() > 1) ranks.dp_device = dist::make_nccl_communicator(*ranks.dp, be.device().ordinal, be.stream());
}

std::string broadcast_string(dist::Communicator& comm, std::string s, int root) {
  int64_t n = static_cast<int64_t>(s.size());
  comm.broadcast(&n, 1, dist::DType::kI64, root);
  s.resize(static_cast<size_t>(n));
  if (n > 0) comm.broadcast(s.data(), static_cast<size_t>(n), dist::DType::kU8, root);
  return s;
}

const std::string& executable_sha256() {
  static const std::string digest = sha256_file("/proc/self/exe");
  return digest;
}

namespace {
std::string who(const dist::Communicator& w) {
  return "rank " + std::to_string(w.rank()) + " of " + std::to_string(w.size());
}

// Every rank learns whether any rank found a problem (an allreduce all ranks must reach, so no
// rank runs ahead and writes while another refuses). The rank with the problem throws it, and
// main() prints it and ends the job (MPI_Abort); the others wait for that instead of racing it
// with a line of their own, and throw after a bound should the abort not come.
void agree(dist::Communicator& w, const std::string& problem) {
  int32_t bad = problem.empty() ? 0 : 1;
  w.allreduce_sum(&bad, 1, dist::DType::kI32);
  if (!problem.empty()) throw ConfigError(problem);
  if (bad == 0) return;
  std::this_thread::sleep_for(std::chrono::seconds(20));
  throw ConfigError(who(w) + ": another rank's inputs differ from rank 0's (its line names the difference)");
}

// The invocation's options first, then the recipe, compared key by key so the message names
// the first key that differs; then the build.
void check_same_recipe_and_build(dist::Communicator& w, const Recipe& recipe, const std::string& invocation) {
  if (w.size() == 1) return;
  std::string problem;
  const std::string invocation0 = broadcast_string(w, invocation, 0);
  if (invocation != invocation0)
    problem = who(w) + ": command-line options " + invocation + " here but " + invocation0 +
              " on rank 0 (launch every rank with the same arguments)";
  agree(w, problem);
  const std::string ours = recipe_to_toml(recipe);
  const std::string theirs = broadcast_string(w, ours, 0);
  if (ours != theirs) {
    const auto d = first_recipe_difference(ours, theirs);
    problem = who(w) + ": recipe " +
              (d ? "key " + d->key + " is " + d->ours + " here but " + d->theirs : std::string("text differs")) +
              " on rank 0 (every rank must run the same recipe: " + recipe.path + ")";
  }
  agree(w, problem);
  const std::string build = std::string(SSIAT_GIT_COMMIT) + " " + executable_sha256();
  const std::string build0 = broadcast_string(w, build, 0);
  if (build != build0)
    problem = who(w) + ": build differs from rank 0's (commit and executable SHA-256 " + build.substr(0, 60) +
              " here, " + build0.substr(0, 60) + " on rank 0); run the same ssiat binary on every rank";
  agree(w, problem);
}
}  // namespace

void check_same_data(Ranks& ranks, const NamedDigests& data) {
  dist::Communicator& w = *ranks.world;
  if (w.size() == 1) return;
  std::string problem;
  for (const auto& [label, digest] : data) {
    const std::string d0 = broadcast_string(w, digest, 0);
    if (digest != d0 && problem.empty())
      problem = who(w) + ": " + label + " differs from rank 0's (SHA-256 " + digest.substr(0, 16) + "… here, " +
                d0.substr(0, 16) + "… on rank 0); every rank must read the same prepared data";
  }
  agree(w, problem);
}

Ranks join_ranks(const Recipe& recipe, const std::string& invocation) {
  const ParallelConfig& p = recipe.parallel;
  Ranks r;
  const bool launched_as_several = !multi_rank_launch().empty();
  auto world_problem = [&](int64_t world) {
    return ConfigError(recipe.path + ": world size " + std::to_string(world) + " != parallel.dp * parallel.tp = " +
                       std::to_string(p.dp) + " * " + std::to_string(p.tp) + " = " + std::to_string(p.dp * p.tp) +
                       " (launch parallel.dp × parallel.tp ranks, e.g. mpirun -np " + std::to_string(p.dp * p.tp) + ")");
  };
  // One process (no launcher) of a multi-rank layout: refused before MPI is even started.
  if (!launched_as_several && p.dp * p.tp > 1) throw world_problem(1);
  r.world = launched_as_several ? dist::make_mpi_communicator() : dist::make_self_communicator();
  r.rank = r.world->rank();
  check_same_recipe_and_build(*r.world, recipe, invocation);
  const dist::NodePlace node = launched_as_several ? dist::node_place() : dist::NodePlace{};
  const dist::ShardedDims dims{recipe.model.n_head, recipe.model.n_kv_head, recipe.model.d_ff, recipe.model.vocab_size};
  if (r.world->size() != p.dp * p.tp) throw world_problem(r.world->size());
  Ranks out = split_ranks(std::move(r.world), p.dp, p.tp, dims, node.rank);
  out.ranks_on_node = node.size;
  return out;
}

Ranks split_ranks(std::unique_ptr<dist::Communicator> world, int64_t dp, int64_t tp, const dist::ShardedDims& dims,
                  int local_rank) {
  Ranks r;
  r.world = std::move(world);
  r.rank = r.world->rank();
  r.local_rank = local_rank;
  r.layout.emplace(r.world->size(), dp, tp, dims);
  const dist::Layout& l = *r.layout;
  if (r.world->size() == 1) {
    r.dp = dist::make_self_communicator();
    r.tp = dist::make_self_communicator();
    return r;
  }
  r.tp = r.world->split(l.tp_group_color(r.rank), l.tp_group_key(r.rank));
  r.dp = r.world->split(l.dp_group_color(r.rank), l.dp_group_key(r.rank));
  return r;
}

}  // namespace ssiat
