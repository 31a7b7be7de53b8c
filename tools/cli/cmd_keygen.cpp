// `ssiat keygen --out PREFIX`: a fresh Ed25519 signing key, written to PREFIX.key (mode 0600) and
// PREFIX.pub (0644) in the formats of core/keys.h; existing files are never overwritten. Prints
// "wrote PREFIX.key (0600) and PREFIX.pub, key id <keyid>".
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/keys.h"
#include "tools/cli/commands.h"

namespace ssiat::cli {

void add_keygen_command(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("keygen", "Generate an Ed25519 key pair for signing attestations");
  cmd->add_option("--out", *out, "Path prefix: writes PREFIX.key (secret, 0600) and PREFIX.pub")->required();
  cmd->callback([out] {
    if (out->empty() || std::filesystem::path(*out).filename().empty())
      throw ConfigError("--out: PREFIX must name a file, e.g. keys/release, got '" + *out + "'");
    const std::string keyid = generate_keypair(*out);
    std::printf("wrote %s (0600) and %s, key id %s\n", secret_key_path(*out).c_str(), public_key_path(*out).c_str(),
                keyid.c_str());
  });
}

}  // namespace ssiat::cli
