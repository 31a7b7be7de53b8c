// DSSE v1 envelopes signed with Ed25519 (contract in core/dsse.h).
#include "core/dsse.h"

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace ssiat {

namespace {

using json = nlohmann::json;

constexpr int kMaxDepth = 64;  // deeper JSON is refused (an envelope is 3 levels deep)

// The text as one JSON value; refuses invalid JSON (or UTF-8), nesting deeper than kMaxDepth and
// an object that has a key twice (which parsers resolve differently: a signature-confusion risk).
json parse_json_strict(std::string_view text, const std::string& where) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool too_deep = false;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxDepth) too_deep = true;
    if (too_deep) return false;  // discard, so the tree stays shallow
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), check);
  } catch (const json::parse_error& e) {
    throw IntegrityError(where + ": not JSON at byte " + std::to_string(e.byte));
  }
  if (too_deep) throw IntegrityError(where + ": JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
  if (!duplicate.empty()) throw IntegrityError(where + ": JSON object has the key '" + duplicate + "' twice");
  return j;
}

const json& require_field(const json& obj, const std::string& key, const std::string& label, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw IntegrityError(where + ": envelope has no field '" + label + "'");
  return *it;
}

const std::string& require_string(const json& v, const std::string& label, const std::string& where) {
  if (!v.is_string()) throw IntegrityError(where + ": envelope field '" + label + "' is not a string");
  return v.get_ref<const std::string&>();
}

std::string require_base64(const json& v, const std::string& label, const std::string& where) {
  std::string bytes;
  if (!base64_decode(require_string(v, label, where), bytes, /*url_safe_too=*/true))
    throw IntegrityError(where + ": envelope field '" + label + "' is not valid base64");
  return bytes;
}

std::string keyid_label(const std::string& keyid) { return keyid.empty() ? "(no key id)" : keyid; }

}  // namespace

std::string pae(std::string_view payload_type, std::string_view payload) {
  std::string out = "DSSEv1 ";
  out += std::to_string(payload_type.size());
  out += ' ';
  out += payload_type;
  out += ' ';
  out += std::to_string(payload.size());
  out += ' ';
  out += payload;
  return out;
}

Envelope sign_envelope(std::string_view payload_type, std::string_view payload, const SecretKey& key) {
  Envelope env;
  env.payload_type = std::string(payload_type);
  env.payload = std::string(payload);
  env.signatures.push_back({key.keyid(), key.sign_detached(pae(payload_type, payload))});
  return env;
}

void verify_envelope(const Envelope& env, const PublicKey& key, const std::string& where) {
  const std::string keyid = key.keyid();
  if (env.signatures.empty()) throw IntegrityError(where + ": envelope has no signatures");
  const std::string message = pae(env.payload_type, env.payload);
  bool tried = false;
  std::string bad_length;
  for (const Signature& s : env.signatures) {
    if (!s.keyid.empty() && s.keyid != keyid) continue;  // keyid only narrows the choice (DSSE)
    tried = true;
    if (s.sig.size() != kEd25519SignatureBytes) {
      bad_length = std::to_string(s.sig.size());
      continue;
    }
    if (key.verify_detached(message, s.sig)) return;
  }
  if (!tried) {
    std::string ids;
    for (const Signature& s : env.signatures) ids += (ids.empty() ? "" : ", ") + keyid_label(s.keyid);
    throw IntegrityError(where + ": no signature by key " + keyid + " (envelope is signed by " + ids + ")");
  }
  if (!bad_length.empty())
    throw IntegrityError(where + ": signature by key " + keyid + " is " + bad_length + " bytes, not a " +
                         std::to_string(kEd25519SignatureBytes) + "-byte Ed25519 signature");
  throw IntegrityError(where + ": signature does not verify with public key " + keyid +
                       " (the payload, payloadType or signature was altered)");
}

std::string envelope_json(const Envelope& env) {
  nlohmann::ordered_json j;
  j["payloadType"] = env.payload_type;
  j["payload"] = base64_encode(env.payload);
  j["signatures"] = nlohmann::ordered_json::array();
  for (const Signature& s : env.signatures)
    j["signatures"].push_back({{"keyid", s.keyid}, {"sig", base64_encode(s.sig)}});
  // Strict: a payloadType or keyid that is not valid UTF-8 is an error, never silently replaced.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
}

Envelope parse_envelope(std::string_view json_text, const std::string& where) {
  const json j = parse_json_strict(json_text, where);
  if (!j.is_object()) throw IntegrityError(where + ": envelope is not a JSON object");
  Envelope env;
  env.payload_type = require_string(require_field(j, "payloadType", "payloadType", where), "payloadType", where);
  env.payload = require_base64(require_field(j, "payload", "payload", where), "payload", where);
  const json& sigs = require_field(j, "signatures", "signatures", where);
  if (!sigs.is_array()) throw IntegrityError(where + ": envelope field 'signatures' is not an array");
  if (sigs.empty()) throw IntegrityError(where + ": envelope has no signatures");
  for (size_t i = 0; i < sigs.size(); i++) {
    const std::string label = "signatures[" + std::to_string(i) + "]";
    if (!sigs[i].is_object()) throw IntegrityError(where + ": envelope field '" + label + "' is not an object");
    Signature s;
    s.sig = require_base64(require_field(sigs[i], "sig", label + ".sig", where), label + ".sig", where);
    if (const auto it = sigs[i].find("keyid"); it != sigs[i].end())
      s.keyid = require_string(*it, label + ".keyid", where);
    env.signatures.push_back(std::move(s));
  }
  return env;
}

}  // namespace ssiat
