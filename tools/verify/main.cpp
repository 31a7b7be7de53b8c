// `ssiat-verify FILE --pubkey PREFIX.pub [--json REPORT]`: the attestation checks that need no
// BLAS, MPI, HDF5 or model (core/verify.h) — signature, schema, the initial weights regenerated
// from the attestation alone, the chain, the origin policy — in a small program a reviewer can
// build anywhere (tools/verify/CMakeLists.txt: portable flags, any 64-bit little-endian CPU).
// Checking checkpoint files is `ssiat verify --checkpoint` (HDF5). Prints one line per check and
// the result; exits 1 if any check FAILED, 2 on a usage error.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "core/fs.h"
#include "core/verify.h"

int main(int argc, char** argv) {
  ssiat::VerifyOptions opt;
  std::string json_out;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--pubkey" && i + 1 < argc) {
      opt.pubkey = argv[++i];
    } else if (a == "--json" && i + 1 < argc) {
      json_out = argv[++i];
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: ssiat-verify ATTESTATION --pubkey PREFIX.pub [--json REPORT]\n");
      return 0;
    } else if (!a.empty() && a[0] != '-' && opt.envelope.empty()) {
      opt.envelope = a;
    } else {
      std::fprintf(stderr, "ssiat-verify: unexpected argument '%s' (usage: ssiat-verify ATTESTATION --pubkey PREFIX.pub [--json REPORT])\n", a.c_str());
      return 2;
    }
  }
  if (opt.envelope.empty() || opt.pubkey.empty()) {
    std::fprintf(stderr, "ssiat-verify: usage: ssiat-verify ATTESTATION --pubkey PREFIX.pub [--json REPORT]\n");
    return 2;
  }
  try {
    const auto checks = ssiat::verify(opt);
    for (const auto& c : checks)
      std::printf("%-7s  %-11s  %s\n", ssiat::check_status_name(c.status), c.name.c_str(), c.detail.c_str());
    const bool ok = ssiat::all_passed(checks);
    std::printf("verify: %s\n", ok ? "PASS" : "FAIL");
    if (!json_out.empty()) ssiat::write_file_atomic(json_out, ssiat::report_json(checks).dump(2) + "\n");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssiat-verify: %s\n", e.what());
    return 1;
  }
}
