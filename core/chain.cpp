// The checkpoint chain file (contract in core/chain.h).
#include "core/chain.h"

#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/state_digest.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ssiat {

json ChainRecord::to_json() const {
  return {{"step", step},
          {"samples_seen", samples_seen},
          {"checkpoint", checkpoint},
          {"manifest_sha256", manifest_sha256},
          {"weights_root", weights_root},
          {"optimizer_root", optimizer_root},
          {"roots_scheme", std::string(kStateRootScheme)},
          {"recipe_sha256", recipe_sha256},
          {"build", {{"git_commit", git_commit}, {"executable_sha256", executable_sha256}}},
          {"segment", segment},
          {"parent", parent}};
}

ChainRecord ChainRecord::from_json(const json& j, const std::string& where) {
  try {
    ChainRecord r;
    r.step = j.at("step").get<int64_t>();
    r.samples_seen = j.at("samples_seen").get<int64_t>();
    r.checkpoint = j.at("checkpoint").get<std::string>();
    r.manifest_sha256 = j.at("manifest_sha256").get<std::string>();
    r.weights_root = j.at("weights_root").get<std::string>();
    r.optimizer_root = j.at("optimizer_root").get<std::string>();
    r.recipe_sha256 = j.at("recipe_sha256").get<std::string>();
    r.git_commit = j.at("build").at("git_commit").get<std::string>();
    r.executable_sha256 = j.at("build").at("executable_sha256").get<std::string>();
    r.segment = j.at("segment").get<int64_t>();
    r.parent = j.at("parent").get<std::string>();
    return r;
  } catch (const json::exception& e) {
    throw IntegrityError(where + ": chain record has a missing or wrong-typed field: " + json_error_message(e));
  }
}

std::string chain_line(const ChainRecord& r) { return r.to_json().dump(); }

std::string chain_digest(const std::string& line) { return sha256_hex(line); }

std::vector<ChainRecord> read_chain(const fs::path& run) {
  const fs::path path = run / kChainFile;
  std::vector<ChainRecord> out;
  if (!fs::exists(path)) return out;
  std::istringstream in(read_whole_file(path));
  std::string line;
  for (int64_t n = 1; std::getline(in, line); n++) {
    if (line.empty()) continue;
    const std::string where = path.string() + ":" + std::to_string(n);
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw IntegrityError(where + ": chain record is not a JSON object");
    out.push_back(ChainRecord::from_json(j, where));
  }
  return out;
}

void write_chain(const fs::path& run, const std::vector<ChainRecord>& records) {
  std::string text;
  for (const auto& r : records) text += chain_line(r) + "\n";
  write_file_atomic(run / kChainFile, text);
}

std::string chain_tip(const std::vector<ChainRecord>& records, const std::string& init_root) {
  return records.empty() ? init_root : chain_digest(chain_line(records.back()));
}

}  // namespace ssiat
