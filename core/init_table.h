// Every initial tensor of a recipe's model, from [model] alone (docs/provenance.md section 1):
// name, logical shape and init spec, in the model's order (core/model.h views()). The verifier
// regenerates W0 from this table without building the model (no BLAS, no kernels), one tensor at
// a time; tests/core/test_init_table.cpp checks it against Llama<float>::views().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/init.h"
#include "core/merkle.h"
#include "core/recipe.h"

namespace ssiat {

struct TensorInit {
  std::string name;
  std::vector<int64_t> shape;
  InitSpec init;
};

// ConfigError from ModelConfig::validate() for a bad [model].
std::vector<TensorInit> init_table(const ModelConfig& m);

struct RegeneratedInit {
  std::vector<std::string> leaves;  // hex, table order
  std::string root;                 // RFC 6962 root of the leaves
};

// Draws each tensor of the table from `seed` (float32, docs/init.md), hashes its leaf
// (core/init_leaf.h) and hands it to `each` (may be empty) before the next is drawn: memory is one
// tensor at a time.
using TensorVisitor = void (*)(void* ctx, size_t index, const TensorInit& t, const float* data, int64_t n);
RegeneratedInit regenerate_init(const ModelConfig& m, uint64_t seed, TensorVisitor each = nullptr, void* ctx = nullptr);

}  // namespace ssiat
