// DSSE v1 (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse: protocol.md and
// envelope.md, version 1.0.2) with Ed25519 signatures (RFC 8032, core/keys.h).
//
// What is signed is PAE(payloadType, payload), never the payload alone:
//   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
// with SP one space (0x20) and LEN the byte length in ASCII decimal without leading zeros.
// A signature's keyid is the signer's key id (core/keys.h: hex SHA-256 of the public key); per the
// spec it is an unauthenticated hint that only selects which signatures to try.
//
// JSON envelope (envelope_json, parse_envelope):
//   {"payloadType": "<type>", "payload": "<base64 of the bytes>",
//    "signatures": [{"keyid": "<keyid>", "sig": "<base64 of the 64-byte signature>"}, ...]}
// Written in the standard base64 alphabet with padding, compact, keys in that order, no newline.
// Read strictly: the text must be one JSON object (valid UTF-8, no key twice in any object) with
// `payloadType` a string, `payload` a base64 string, `signatures` a non-empty array of objects each
// with a base64 string `sig` and an optional string `keyid` (absent means ""). Base64 is canonical
// RFC 4648 in the standard or URL-safe alphabet, padded or not (the spec: verifiers MUST accept
// either). Other fields are ignored (the spec: consumers MUST ignore unrecognised fields).
//
// Errors are ssiat::IntegrityError (core/error.h), one line starting with `where` (a file name):
//   "WHERE: not JSON at byte N", "WHERE: envelope has no field 'payload'",
//   "WHERE: envelope field 'signatures[0].sig' is not valid base64", "WHERE: envelope has no signatures",
//   "WHERE: no signature by key K (envelope is signed by K1, K2)",
//   "WHERE: signature does not verify with public key K (the payload, payloadType or signature was altered)".
//
// The spec's warning applies to callers: use the payload of the Envelope that verify_envelope
// accepted; never re-read the file for it after verification.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/keys.h"

namespace ssiat {

// The payloadType of an in-toto Statement (in-toto attestation framework, Statement v1).
inline constexpr std::string_view kInTotoPayloadType = "application/vnd.in-toto+json";

struct Signature {
  std::string keyid;  // "" when the envelope gives none
  std::string sig;    // raw signature bytes (64 for Ed25519)
  bool operator==(const Signature&) const = default;
};

struct Envelope {
  std::string payload_type;
  std::string payload;  // decoded bytes
  std::vector<Signature> signatures;
  bool operator==(const Envelope&) const = default;
};

// The pre-authentication encoding above (the exact bytes each signature covers).
std::string pae(std::string_view payload_type, std::string_view payload);

// An envelope with one Ed25519 signature by `key` over pae(payload_type, payload).
Envelope sign_envelope(std::string_view payload_type, std::string_view payload, const SecretKey& key);

// Returns if some signature whose keyid is key.keyid() (or empty) is a valid Ed25519 signature
// of pae(env.payload_type, env.payload) by `key`; throws IntegrityError naming `where` otherwise.
// The payload type is not checked here: the caller compares it with the type it expects.
void verify_envelope(const Envelope& env, const PublicKey& key, const std::string& where);

std::string envelope_json(const Envelope& env);
Envelope parse_envelope(std::string_view json_text, const std::string& where);

}  // namespace ssiat
