// Init provenance building blocks: the RFC 6962 Merkle Tree Hash against the Certificate
// Transparency reference vectors, hex digests, and the init-leaf byte layout of
// docs/provenance.md section 2 (assembled here from the text, independently of core/init_leaf.cpp).
#include <gtest/gtest.h>

#include <bit>
#include <map>
#include <string>
#include <vector>

#include "core/init_leaf.h"
#include "core/merkle.h"
#include "core/state_digest.h"

namespace ssiat {
namespace {

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

// google/certificate-transparency merkle_tree_test: the leaf inputs and the root over the first n.
TEST(Merkle, CertificateTransparencyReferenceRoots) {
  const std::vector<std::string> leaves = {"",         "00",       "10",       "2021",
                                           "3031",     "40414243", "5051525354555657",
                                           "606162636465666768696a6b6c6d6e6f"};
  const std::vector<std::string> roots = {
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  // empty tree: SHA-256("")
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  std::vector<Digest> hashes;
  EXPECT_EQ(digest_hex(merkle_root(hashes)), roots[0]);
  for (size_t n = 1; n <= leaves.size(); n++) {
    hashes.push_back(merkle_leaf_hash(unhex(leaves[n - 1])));
    EXPECT_EQ(digest_hex(merkle_root(hashes)), roots[n]) << n << " leaves";
  }
  // The streamed leaf hasher is the same function.
  LeafHasher h;
  h.update(unhex("5051"));
  h.update(unhex("525354555657"));
  EXPECT_EQ(h.finish(), hashes[6]);
}

TEST(Merkle, HexRoundTripAndRefusals) {
  const Digest d = merkle_leaf_hash("x");
  EXPECT_EQ(digest_from_hex(digest_hex(d)), d);
  std::string upper = digest_hex(d);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(digest_from_hex(upper), d);
  EXPECT_FALSE(digest_from_hex(digest_hex(d).substr(1)));
  EXPECT_FALSE(digest_from_hex(std::string(63, '0') + "g"));
}

std::string u64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; i++) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

TEST(InitLeaf, BytesFollowTheSpecification) {
  const std::vector<int64_t> shape = {2, 3};
  const InitSpec spec = InitSpec::normal(0.0, 0.5);
  std::string want = std::string("ssiat/init-leaf/v1") + '\0';
  want += u64(7) + "model.w" + u64(7) + "float32";
  want += u64(2) + u64(2) + u64(3);
  want += u64(6) + "normal" + u64(2) + u64(std::bit_cast<uint64_t>(0.0)) + u64(std::bit_cast<uint64_t>(0.5));
  want += u64(24);
  EXPECT_EQ(init_leaf_header("model.w", "float32", shape, spec, 24), want);
  EXPECT_EQ(init_leaf_header("n", "float32", {4}, InitSpec::ones(), 16),
            std::string("ssiat/init-leaf/v1") + '\0' + u64(1) + "n" + u64(7) + "float32" + u64(1) + u64(4) + u64(4) +
                "ones" + u64(0) + u64(16));
  const float data[6] = {1, 2, 3, 4, 5, 6};
  const std::string bytes(reinterpret_cast<const char*>(data), sizeof data);
  EXPECT_EQ(init_leaf_hash("model.w", "float32", shape, spec, data, sizeof data), merkle_leaf_hash(want + bytes));
  // Every bound field changes the leaf: a value, the shape, the spec, the name.
  float other[6] = {1, 2, 3, 4, 5, 7};
  const Digest base = init_leaf_hash("model.w", "float32", shape, spec, data, sizeof data);
  EXPECT_NE(init_leaf_hash("model.w", "float32", shape, spec, other, sizeof other), base);
  EXPECT_NE(init_leaf_hash("model.w", "float32", {3, 2}, spec, data, sizeof data), base);
  EXPECT_NE(init_leaf_hash("model.w", "float32", shape, InitSpec::normal(0.0, 0.25), data, sizeof data), base);
  EXPECT_NE(init_leaf_hash("model.v", "float32", shape, spec, data, sizeof data), base);
}

TEST(StateDigest, LeafBytesAndRootsFollowTheSpecification) {
  EXPECT_EQ(state_leaf_header("param/w", "float32", {2, 3}, 24),
            std::string("ssiat/state-leaf/v1") + '\0' + u64(7) + "param/w" + u64(7) + "float32" + u64(2) + u64(2) +
                u64(3) + u64(24));
  // Roots: the param/ leaves, and the adam_m/ then adam_v/ leaves, each in key byte order.
  const Digest a = merkle_leaf_hash("a"), b = merkle_leaf_hash("b"), c = merkle_leaf_hash("c"), d = merkle_leaf_hash("d");
  const std::map<std::string, Digest> leaves = {
      {"param/model.layers.10.x", a}, {"param/model.layers.2.x", b}, {"adam_v/w", c}, {"adam_m/w", d}};
  const StateRoots r = state_roots(leaves);
  const std::vector<Digest> w = {a, b}, o = {d, c};  // "…layers.10…" < "…layers.2…" in byte order
  EXPECT_EQ(r.weights, digest_hex(merkle_root(w)));
  EXPECT_EQ(r.optimizer, digest_hex(merkle_root(o)));
  EXPECT_NE(r.weights, r.optimizer);
}

}  // namespace
}  // namespace ssiat
