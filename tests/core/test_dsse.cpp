// core/dsse.h: PAE and signatures against published vectors (the DSSE spec's protocol.md test
// vector; RFC 8032 section 7.1 TEST 1; a DSSE signature by the RFC key computed independently with
// Python's `cryptography` (OpenSSL), not libsodium), tampering caught and named, and the envelope
// reader's one-line errors on malformed input.
#include <gtest/gtest.h>

#include <array>
#include <string>

#include "core/dsse.h"
#include "core/error.h"
#include "core/keys.h"

namespace ssiat {
namespace {

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

std::string hex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) out += d[c >> 4], out += d[c & 15];
  return out;
}

// RFC 8032 section 7.1, TEST 1.
constexpr std::string_view kRfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr std::string_view kRfcPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr std::string_view kRfcEmptySig =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
// Ed25519 by the RFC key over "DSSEv1 29 http://example.com/HelloWorld 11 hello world" (Python
// cryptography 48 / OpenSSL 3.0), and SHA-256 of the RFC public key.
constexpr std::string_view kHelloSig =
    "e031d7dd99f8aa904abc48fb99a13c3bdbbd6e35c49cf2cb9f25d5509d8f5c947c0d22dc2f7403a45bdf24e8f7a41fd23c7b25e898386e8c6c31be8abee60007";
constexpr std::string_view kRfcKeyid = "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";
constexpr std::string_view kHelloType = "http://example.com/HelloWorld";

SecretKey rfc_key() {
  std::array<uint8_t, kEd25519SeedBytes> seed{};
  const std::string s = unhex(kRfcSeed);
  std::copy(s.begin(), s.end(), seed.begin());
  return SecretKey::from_seed(seed);
}

SecretKey other_key() {
  std::array<uint8_t, kEd25519SeedBytes> seed{};
  seed.fill(7);
  return SecretKey::from_seed(seed);
}

// The IntegrityError message of fn(), or "" if it throws none.
template <typename Fn>
std::string integrity_error(Fn fn) {
  try {
    fn();
  } catch (const IntegrityError& e) {
    return e.what();
  }
  return "";
}

TEST(DssePae, MatchesTheSpecTestVector) {
  EXPECT_EQ(pae(kHelloType, "hello world"), "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  EXPECT_EQ(pae("", ""), "DSSEv1 0  0 ");  // LEN of nothing is "0", not ""
  EXPECT_EQ(pae("t", std::string(100, 'x')).substr(0, 14), "DSSEv1 1 t 100");
  const std::string binary("a\0b", 3);
  EXPECT_EQ(pae("t", binary), std::string("DSSEv1 1 t 3 a\0b", 16));
}

TEST(DsseEd25519, Rfc8032Test1) {
  const SecretKey key = rfc_key();
  EXPECT_EQ(hex(std::string(reinterpret_cast<const char*>(key.public_key().bytes().data()), 32)), kRfcPublic);
  EXPECT_EQ(hex(key.sign_detached("")), kRfcEmptySig);
  EXPECT_TRUE(key.public_key().verify_detached("", unhex(kRfcEmptySig)));
  EXPECT_FALSE(key.public_key().verify_detached("x", unhex(kRfcEmptySig)));
  EXPECT_EQ(key.keyid(), kRfcKeyid);
}

TEST(DsseEnvelope, SignsThePaeAndMatchesAnIndependentSignature) {
  const Envelope env = sign_envelope(kHelloType, "hello world", rfc_key());
  ASSERT_EQ(env.signatures.size(), 1u);
  EXPECT_EQ(env.signatures[0].keyid, kRfcKeyid);
  EXPECT_EQ(hex(env.signatures[0].sig), kHelloSig);  // wrong bytes signed => different signature
  EXPECT_EQ(envelope_json(env),
            "{\"payloadType\":\"http://example.com/HelloWorld\",\"payload\":\"aGVsbG8gd29ybGQ=\",\"signatures\":"
            "[{\"keyid\":\"" + std::string(kRfcKeyid) +
                "\",\"sig\":\"4DHX3Zn4qpBKvEj7maE8O9u9bjXEnPLLnyXVUJ2PXJR8DSLcL3QDpFvfJOj3pB/SPHsl6Jg4boxsMb6KvuYABw==\"}]}");
  EXPECT_NO_THROW(verify_envelope(env, rfc_key().public_key(), "a.json"));
}

TEST(DsseEnvelope, JsonRoundTrip) {
  const std::string payload("{\"_type\":\"x\"}\n\0\xff", 16);
  Envelope env = sign_envelope(kInTotoPayloadType, payload, rfc_key());
  env.signatures.push_back({"", std::string(64, '\x01')});
  const Envelope back = parse_envelope(envelope_json(env), "a.json");
  EXPECT_EQ(back, env);
  EXPECT_EQ(back.payload, payload);
  EXPECT_NO_THROW(verify_envelope(back, rfc_key().public_key(), "a.json"));
}

TEST(DsseEnvelope, AcceptsUrlSafeUnpaddedBase64AndIgnoresUnknownFields) {
  // "+/" in the standard alphabet is "-_" in the URL-safe one; the spec says accept either.
  const Envelope env = parse_envelope(
      R"({"payload":"-_8","payloadType":"t","signatures":[{"sig":"AA"}],"extra":{"a":[1]}})", "e.json");
  EXPECT_EQ(env.payload, "\xfb\xff");
  EXPECT_EQ(env.signatures[0].keyid, "");  // absent keyid is the empty one
  EXPECT_EQ(env.signatures[0].sig, std::string(1, '\0'));
}

TEST(DsseEnvelope, TamperingIsCaughtAndNamed) {
  const Envelope good = sign_envelope(kHelloType, "hello world", rfc_key());
  const PublicKey pub = rfc_key().public_key();
  const std::string altered =
      "f.json: signature does not verify with public key " + std::string(kRfcKeyid) +
      " (the payload, payloadType or signature was altered)";
  Envelope e = good;
  e.payload[0] ^= 1;
  EXPECT_EQ(integrity_error([&] { verify_envelope(e, pub, "f.json"); }), altered);
  e = good;
  e.payload_type.back() ^= 1;
  EXPECT_EQ(integrity_error([&] { verify_envelope(e, pub, "f.json"); }), altered);
  for (const size_t i : {0, 31, 32, 63}) {
    e = good;
    e.signatures[0].sig[i] ^= 0x10;
    EXPECT_EQ(integrity_error([&] { verify_envelope(e, pub, "f.json"); }), altered) << "byte " << i;
  }
  e = good;
  e.signatures[0].sig.pop_back();
  EXPECT_EQ(integrity_error([&] { verify_envelope(e, pub, "f.json"); }),
            "f.json: signature by key " + std::string(kRfcKeyid) + " is 63 bytes, not a 64-byte Ed25519 signature");
  // The same through the JSON text: a payload that decodes to other bytes.
  std::string text = envelope_json(good);
  text.replace(text.find("aGVsbG8gd29ybGQ="), 16, "aGVsbG8gd29ybGU=");
  EXPECT_EQ(integrity_error([&] { verify_envelope(parse_envelope(text, "f.json"), pub, "f.json"); }), altered);
}

TEST(DsseEnvelope, WrongKeyNamesBothKeyIds) {
  const Envelope env = sign_envelope(kHelloType, "hello world", rfc_key());
  const PublicKey wrong = other_key().public_key();
  EXPECT_EQ(integrity_error([&] { verify_envelope(env, wrong, "f.json"); }),
            "f.json: no signature by key " + wrong.keyid() + " (envelope is signed by " + std::string(kRfcKeyid) + ")");
  // A signature claiming the verifier's key id but made by another key still fails.
  Envelope forged = sign_envelope(kHelloType, "hello world", other_key());
  forged.signatures[0].keyid = std::string(kRfcKeyid);
  EXPECT_EQ(integrity_error([&] { verify_envelope(forged, rfc_key().public_key(), "f.json"); }),
            "f.json: signature does not verify with public key " + std::string(kRfcKeyid) +
                " (the payload, payloadType or signature was altered)");
  // One good signature among others is enough.
  forged.signatures.push_back(env.signatures[0]);
  EXPECT_NO_THROW(verify_envelope(forged, rfc_key().public_key(), "f.json"));
}

TEST(DsseEnvelope, MalformedEnvelopesGiveOneLineErrors) {
  const auto err = [](std::string_view text) { return integrity_error([&] { parse_envelope(text, "e.json"); }); };
  const std::string sig = R"("signatures":[{"keyid":"k","sig":"AA=="}])";
  EXPECT_EQ(err(""), "e.json: not JSON at byte 1");
  EXPECT_EQ(err(R"({"payload": "aGk=", )"), "e.json: not JSON at byte 21");
  EXPECT_EQ(err("[1]"), "e.json: envelope is not a JSON object");
  EXPECT_EQ(err(R"({"payload":"aGk=",)" + sig + "}"), "e.json: envelope has no field 'payloadType'");
  EXPECT_EQ(err(R"({"payloadType":"t",)" + sig + "}"), "e.json: envelope has no field 'payload'");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk="})"), "e.json: envelope has no field 'signatures'");
  EXPECT_EQ(err(R"({"payloadType":7,"payload":"aGk=",)" + sig + "}"), "e.json: envelope field 'payloadType' is not a string");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk",)" + sig + "}").find("base64"), std::string::npos)
      << "unpadded base64 is allowed";
  for (const char* bad : {"aGk=!", "aG k=", "a", "aGk=\\n", "aGl=", "aGk+_w=="})  // "aGl=": nonzero unused bits
    EXPECT_EQ(err(R"({"payloadType":"t","payload":")" + std::string(bad) + "\"," + sig + "}"),
              "e.json: envelope field 'payload' is not valid base64")
        << bad;
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","signatures":[]})"), "e.json: envelope has no signatures");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","signatures":{}})"),
            "e.json: envelope field 'signatures' is not an array");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AA=="},3]})"),
            "e.json: envelope field 'signatures[1]' is not an object");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k"}]})"),
            "e.json: envelope has no field 'signatures[0].sig'");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"A*=="}]})"),
            "e.json: envelope field 'signatures[0].sig' is not valid base64");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","signatures":[{"sig":"AA==","keyid":1}]})"),
            "e.json: envelope field 'signatures[0].keyid' is not a string");
  EXPECT_EQ(err(R"({"payloadType":"t","payload":"aGk=","payload":"aGk=",)" + sig + "}"),
            "e.json: JSON object has the key 'payload' twice");
  EXPECT_EQ(err("{\"payloadType\":\"\xff\",\"payload\":\"\"," + sig + "}").rfind("e.json: not JSON at byte ", 0), 0u)
      << "invalid UTF-8";
  EXPECT_EQ(err(std::string(100, '[') + std::string(100, ']')), "e.json: JSON nested deeper than 64 levels");
  EXPECT_EQ(integrity_error([&] {
              Envelope e;
              e.payload_type = "t";
              verify_envelope(e, rfc_key().public_key(), "e.json");
            }),
            "e.json: envelope has no signatures");
}

}  // namespace
}  // namespace ssiat
