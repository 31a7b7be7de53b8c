// Where the tools after training (export, logits, generate, eval; issue 11) take a model from:
// a run directory (its `latest` checkpoint) or one checkpoint directory. The model is the
// checkpoint's own recipe (manifest "recipe", the effective recipe it was trained with) and its
// verified "param/<name>" tensors; the tokenizer is the recipe's ([tokenizer] path, resolved
// against the working directory as the trainer resolved it, else against the run directory's
// parent). Optimizer moments are never read.
// Errors, one line each: IoError/ConfigError "PATH: neither a checkpoint directory (manifest.json)
// nor a run directory with checkpoints/latest"; the checkpoint reader's torn/read/integrity errors
// naming the file and tensor (core/checkpoint.h); ConfigError naming tokenizer.path when the
// tokenizer directory is not found.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "core/model.h"
#include "core/recipe.h"
#include "tokenizer/tokenizer.h"

namespace ssiat {

struct ModelSource {
  std::filesystem::path checkpoint;  // the checkpoint directory
  CheckpointManifest manifest;       // verified fields and self-digest (tensors not yet read)
  Recipe recipe;                     // the checkpoint's recipe
  std::filesystem::path tokenizer_dir;  // "" for the byte tokenizer
};

// Resolves `path` (run or checkpoint directory) and reads the checkpoint's manifest and recipe.
ModelSource open_model_source(const std::filesystem::path& path);

// The recipe's tokenizer (BPE from tokenizer_dir, or the byte tokenizer).
std::unique_ptr<tokenizer::Tokenizer> open_source_tokenizer(const ModelSource& src);

// Streams the checkpoint's parameters, one verified tensor at a time, by name (without "param/"),
// in name order.
void for_each_parameter(const ModelSource& src,
                        const std::function<void(const std::string& name, const std::vector<int64_t>& shape,
                                                 std::vector<float>&& data)>& each);

// A one-rank model on `exec`'s device holding the checkpoint's parameters.
std::unique_ptr<Llama<float>> load_model(const ModelSource& src, const ExecConfig& exec = {});

}  // namespace ssiat
