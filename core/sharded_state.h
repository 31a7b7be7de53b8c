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
  HostState(Llama<float>& model, AdamW<float>& opt) : model_(model), opt_(opt) {
    if (model.backend().kind() == DeviceKind::kCpu) {
      params_host_ = model.params();
      m_host_ = opt.m();
      v_host_ = opt.v();
      return;
    }
    params_.resize(model.num_params());
    m_.resize(opt.state_size());
    v_.resize(opt.state_size());
    params_host_ = params_.data();
    m_host_ = m_.data();
    v_host_ = v_.data();
  }
  float* params() { return params_host_; }  // num_params floats, at the views' offsets
  float* m() { return m_host_; }             // state_size floats
  float* v() { return v_host_; }
  void pull() {
    if (!params_.data()) return;
    model_.copy_params_to_host(params_.data());
    opt_.copy_moments_to_host(m_.data(), v_.data());
  }
  void push() {
    if (!params_.data()) return;
    model_.copy_params_from_host(params_.data());
    opt_.copy_moments_from_host(m_.data(), v_.data());
  }

 private:
  Llama<float>& model_;
  AdamW<float>& opt_;
  Buffer<float> params_, m_, v_;  // GPU runs only
  float* params_host_ = nullptr;
  float* m_host_ = nullptr;
  float* v_host_ = nullptr;
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
