// The ranks of one training run: how a process joins the job, its communicators, and the
// start-up agreement checks (issue 9; ../shared/DESIGN.md "Parallelism"; distributed/mesh.h).
//
// join_ranks(recipe): a process launched alone runs as one rank over self communicators (MPI is
// never initialised). Launched by mpirun/srun as several ranks (core/run_lock.h
// multi_rank_launch) it joins MPI_COMM_WORLD. Either way the world must hold exactly
// parallel.dp × parallel.tp ranks (ConfigError "RECIPE: world size 1 != parallel.dp *
// parallel.tp = 1 * 2 = 2 (launch ...)"). Then world is split into the tp and dp groups of the
// Layout. Collective over the world.
//
// Agreement: ranks compare digests with rank 0 and a rank that differs throws ConfigError naming
// itself and the first difference ("rank 1 of 2: recipe key optim.lr is 0.002 here but 0.001 on
// rank 0"): join_ranks compares the invocation's options, the effective recipe (before the world
// size is checked against it) and the build (commit and SHA-256 of the running executable); check_same_data each named
// data manifest. Collective over the world.
//
// Device buffers: make_device_comms gives the dp and tp groups NCCL communicators over the
// model's CUDA stream (each bootstrapped over its group's MPI communicator) when the model runs
// on CUDA and the group has more than one rank; dp_grads() is the communicator for gradient and
// parameter buffers either way, and the model takes tp_device for its activations.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/recipe.h"
#include "distributed/comm.h"
#include "distributed/mesh.h"

namespace ssiat {

struct Ranks {
  std::unique_ptr<distributed::Communicator> world;  // host buffers
  std::unique_ptr<distributed::Communicator> dp;     // host buffers, this rank's dp group
  std::unique_ptr<distributed::Communicator> tp;     // host buffers, this rank's tp group
  std::unique_ptr<distributed::Communicator> dp_device;  // NCCL for CUDA buffers (nullptr: dp)
  std::unique_ptr<distributed::Communicator> tp_device;  // NCCL for CUDA buffers (nullptr: tp)
  std::optional<distributed::Layout> layout;
  int rank = 0;        // global rank
  int local_rank = 0;     // rank on this node: the CUDA device ordinal
  int ranks_on_node = 1;  // ranks sharing this node's memory
  bool root() const { return rank == 0; }
  int size() const { return world->size(); }
  distributed::Communicator& dp_grads() { return dp_device ? *dp_device : *dp; }
};

// invocation: the command-line options that change what every rank does (e.g. "--resume
// --stop-after 5"), compared like the recipe.
Ranks join_ranks(const Recipe& recipe, const std::string& invocation = "");
// What join_ranks does after its checks: the Layout of `world` (which must hold dp × tp ranks)
// and its tp and dp groups. Collective over `world`.
Ranks split_ranks(std::unique_ptr<distributed::Communicator> world, int64_t dp, int64_t tp,
                  const distributed::ShardedDims& dims, int local_rank = 0);
void make_device_comms(Ranks& ranks, const Backend& be);

// rank `root`'s string on every rank of `comm`. Collective.
std::string broadcast_string(distributed::Communicator& comm, std::string s, int root);

// (label, digest) of each data manifest, e.g. {"data manifest prep/train", "ab12…"}.
using NamedDigests = std::vector<std::pair<std::string, std::string>>;
void check_same_data(Ranks& ranks, const NamedDigests& data);

// SHA-256 of the running executable (/proc/self/exe), computed once.
const std::string& executable_sha256();

}  // namespace ssiat
