// The training state as checkpoints hold it: logical whole tensors, whatever the layout
// (../shared/DESIGN.md "Parallelism": one writer; any layout resumes any other).
//
// HostState: the three flat buffers a checkpoint holds (weights and the two moments) in host
// memory: the model's and optimizer's own on the CPU; on a GPU, host copies that pull()
// refreshes before a save and push() sends back after a restore. The moments are the
// optimizer's state_size() elements: every parameter's, or a ZeRO-1 rank's share.
//
// Saving (global rank 0 writes): checkpoint_tensors() lists every tensor (param/, adam_m/,
// adam_v/ of each view, views() order) for write_checkpoint; where rank 0 does not hold a tensor
// whole (tensor parallelism, or ZeRO-1 moments), the tensor is fetched by Assembler::assemble
// while the writer reaches it, one tensor at a time, and every other rank runs
// serve_checkpoint_gathers() alongside (the same collective calls in the same order).
// Assembly: a moment's block is first gathered over the dp group to its dp rank 0
// (DataParallel::gather_state; weights are whole on every dp rank), then the tp group of dp rank
// 0 brings each tp rank's block to global rank 0, which places it by its geometry
// (ParamView::block, distributed::Layout::block) into the logical (rows, cols) tensor.
//
// Restoring: restore_tensors() — rank 0 has read and verified the checkpoint and checks it holds
// exactly the model's tensors (logical shapes); each tensor is broadcast from it in views() order
// and every rank keeps its part: its tp block of the weights, and of the moments its share
// (DataParallel::take_state). Collective over the world.
#pragma once

#include <filesystem>
#include <vector>

#include "core/buffer.h"
#include "core/checkpoint.h"
#include "core/data_parallel.h"
#include "core/model.h"
#include "core/optimizer.h"
#include "core/ranks.h"

namespace ssiat {

class HostState {
 public:
  // weights / moments: whether this rank's part of a checkpoint includes them (dp rank 0 of each
  // tp group gives the weights; the moments come from dp rank 0, or from every rank under
  // ZeRO-1). On a GPU only those host copies are kept between saves.
  HostState(Llama<float>& model, AdamW<float>& opt, bool weights = true, bool moments = true)
      : model_(model), opt_(opt), gpu_(model.backend().kind() != DeviceKind::kCpu), weights_(weights),
        moments_(moments) {}
  // Host buffers (on a GPU allocated at the first call): num_params floats at the views'
  // offsets; state_size floats each.
  float* params() { return gpu_ ? ensure(params_, model_.num_params()) : model_.params(); }
  float* m() { return gpu_ ? ensure(m_, opt_.state_size()) : opt_.m(); }
  float* v() { return gpu_ ? ensure(v_, opt_.state_size()) : opt_.v(); }
  // Downloads what this rank contributes to a checkpoint.
  void pull() {
    if (!gpu_) return;
    if (weights_) model_.copy_params_to_host(params());
    if (moments_) opt_.copy_moments_to_host(m(), v());
  }
  // Uploads all three (after a restore filled them), then frees the copies this rank does not
  // contribute.
  void push() {
    if (!gpu_) return;
    model_.copy_params_from_host(params());
    opt_.copy_moments_from_host(m(), v());
    if (!weights_) params_ = Buffer<float>();
    if (!moments_) m_ = Buffer<float>(), v_ = Buffer<float>();
  }

 private:
  static float* ensure(Buffer<float>& b, int64_t n) {
    if (b.size() != n) b.resize(n);
    return b.data();
  }
  Llama<float>& model_;
  AdamW<float>& opt_;
  bool gpu_, weights_, moments_;
  Buffer<float> params_, m_, v_;  // GPU runs only
};

class Assembler {
 public:
  Assembler(HostState& state, DataParallel& dpar, Ranks& ranks) : state_(state), dpar_(dpar), ranks_(ranks) {}
  // Whether any tensor needs other ranks' parts (else global rank 0 holds all of them).
  bool needed() const { return dpar_.zero1() || ranks_.tp->size() > 1; }
  // group 0: weights, 1: first moment, 2: second; dst (the logical tensor) on global rank 0
  // (nullptr elsewhere). Collective over the world.
  void assemble(const ParamView& v, int group, float* dst);

 private:
  HostState& state_;
  DataParallel& dpar_;
  Ranks& ranks_;
  std::vector<float> block_, piece_;
};

std::vector<CheckpointTensor> checkpoint_tensors(const Llama<float>& model, HostState& state, Assembler& as);
void serve_checkpoint_gathers(const Llama<float>& model, HostState& state, Assembler& as);
// ck: the checkpoint on global rank 0 (nullptr elsewhere); dir names it in errors.
void restore_tensors(const LoadedCheckpoint* ck, const Llama<float>& model, HostState& state, DataParallel& dpar,
                     distributed::Communicator& world, const std::filesystem::path& dir);

}  // namespace ssiat
