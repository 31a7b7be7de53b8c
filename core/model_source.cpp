// Opening a trained model for the tools after training (contract in core/model_source.h).
#include "core/model_source.h"

#include <map>

#include "core/data.h"
#include "core/error.h"
#include "core/fs.h"

namespace ssiat {

namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = "manifest.json";

fs::path checkpoint_dir_of(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError(path.string() + ": does not exist");
  if (fs::is_regular_file(path / kManifest, ec)) return path;
  if (fs::is_directory(path / "checkpoints", ec)) {
    if (const auto latest = latest_checkpoint(path)) return *latest;
    throw IoError(path.string() + ": a run directory without a checkpoint (checkpoints/latest is missing or names none)");
  }
  throw IoError(path.string() + ": neither a checkpoint directory (" + kManifest +
                ") nor a run directory with checkpoints/latest");
}

}  // namespace

ModelSource open_model_source(const fs::path& path) {
  ModelSource src;
  src.checkpoint = checkpoint_dir_of(path);
  const fs::path m = src.checkpoint / kManifest;
  src.manifest = read_manifest(src.checkpoint);
  if (src.manifest.meta.recipe.empty()) throw ConfigError(m.string() + ": the checkpoint records no recipe (key recipe)");
  src.recipe = parse_recipe(src.manifest.meta.recipe, m.string() + " (recipe)");
  if (src.recipe.tokenizer.kind == TokenizerKind::kBpe) {
    // As the trainer resolved it (the working directory), else against the checkpoint's
    // ancestors (a run exported from elsewhere: runs/x/checkpoints/step_N -> ./data/...).
    const fs::path rel = src.recipe.tokenizer.path;
    std::error_code ec;
    if (rel.is_absolute() || fs::is_directory(rel, ec)) {
      src.tokenizer_dir = rel;
    } else {
      for (fs::path up = fs::absolute(src.checkpoint, ec).parent_path(); !up.empty(); up = up.parent_path()) {
        if (fs::is_directory(up / rel, ec)) {
          src.tokenizer_dir = up / rel;
          break;
        }
        if (up == up.parent_path()) break;
      }
    }
    if (src.tokenizer_dir.empty() || !fs::is_directory(src.tokenizer_dir, ec))
      throw ConfigError(m.string() + ": recipe key tokenizer.path = \"" + src.recipe.tokenizer.path +
                        "\" is not a directory here or above the checkpoint; run from the training's working directory");
  }
  return src;
}

std::unique_ptr<tokenizer::Tokenizer> open_source_tokenizer(const ModelSource& src) {
  auto tok = open_tokenizer(src.recipe.tokenizer.kind, src.tokenizer_dir.string());
  if (tok->vocab_size() != src.recipe.model.vocab_size)
    throw ConfigError(src.tokenizer_dir.string() + ": the tokenizer has " + std::to_string(tok->vocab_size()) +
                      " pieces but the model's model.vocab_size is " + std::to_string(src.recipe.model.vocab_size));
  return tok;
}

void for_each_parameter(const ModelSource& src,
                        const std::function<void(const std::string&, const std::vector<int64_t>&, std::vector<float>&&)>& each) {
  stream_checkpoint(
      src.checkpoint, [](const std::string& key) { return key.rfind("param/", 0) == 0; },
      [&](const std::string& key, const std::vector<int64_t>& shape, std::vector<float>&& data) {
        each(key.substr(6), shape, std::move(data));
      });
}

std::unique_ptr<Llama<float>> load_model(const ModelSource& src, const ExecConfig& exec) {
  auto model = std::make_unique<Llama<float>>(src.recipe.model, exec);
  std::map<std::string, const ParamView*> views;
  for (const auto& v : model->views()) views[v.name] = &v;
  std::vector<float> host(static_cast<size_t>(model->num_params()));
  for_each_parameter(src, [&](const std::string& name, const std::vector<int64_t>& shape, std::vector<float>&& data) {
    const auto it = views.find(name);
    if (it == views.end())
      throw IntegrityError(src.checkpoint.string() + ": tensor param/" + name + " is not a parameter of the recipe's model");
    if (it->second->shape != shape || static_cast<int64_t>(data.size()) != it->second->numel)
      throw IntegrityError(src.checkpoint.string() + ": tensor param/" + name + " has another shape than the recipe's model");
    std::copy(data.begin(), data.end(), host.begin() + it->second->offset);
    views.erase(it);
  });
  if (!views.empty())
    throw IntegrityError(src.checkpoint.string() + ": the checkpoint has no tensor param/" + views.begin()->first);
  model->copy_params_from_host(host.data());
  return model;
}

}  // namespace ssiat
