#include "libs/common/auth.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <mutex>
#include <shared_mutex>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace mci::auth {
namespace {

constexpr absl::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

std::string Hmac(absl::string_view secret, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) out.push_back(c);
  }
  return out + "\"";
}

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat(
      why,
      " Send a valid token as 'authorization: Bearer <token>' (issue one with mcictl token)."));
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kObserver:
      return "observer";
    case Role::kActor:
      return "actor";
    case Role::kDesigner:
      return "designer";
    case Role::kLibrary:
      return "library";
    case Role::kPublisher:
      return "publisher";
    case Role::kAdmin:
      return "admin";
    case Role::kService:
      return "service";
  }
  return "observer";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : {Role::kObserver, Role::kActor, Role::kDesigner, Role::kLibrary, Role::kPublisher,
                 Role::kAdmin, Role::kService}) {
    if (RoleName(r) == name) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("Unknown role \"", name,
                   "\"; roles are observer, actor, designer, library, publisher, admin, service."));
}

bool Caller::Has(Role role) const {
  if (role == Role::kObserver) return true;
  return roles.count(role) > 0;
}

std::string SignToken(absl::string_view secret, const Claims& claims) {
  std::vector<std::string> roles;
  for (Role r : claims.roles) roles.push_back(JsonString(RoleName(r)));
  std::string payload = absl::StrCat(
      "{\"sub\":", JsonString(claims.subject), ",\"account\":", JsonString(claims.account),
      ",\"roles\":[", absl::StrJoin(roles, ","), "],\"iat\":", absl::ToUnixSeconds(absl::Now()),
      ",\"exp\":", absl::ToUnixSeconds(claims.expires), "}");
  std::string signing_input =
      absl::StrCat(absl::WebSafeBase64Escape(kHeader), ".", absl::WebSafeBase64Escape(payload));
  return absl::StrCat(signing_input, ".", absl::WebSafeBase64Escape(Hmac(secret, signing_input)));
}

namespace {

// Verified tokens, so that a caller's repeated calls skip the base64, HMAC and two JSON parses of
// VerifyToken (a profile of ResolveImage showed them as the largest part of a cached call's CPU).
// Only successful verifications are kept, with the secret they were verified with; the expiry is
// checked on every use. Bounded: a full shard is emptied. Find, on every call, takes its shard's
// lock shared: one caller's calls all hash to one shard, which an exclusive lock would make a
// point every call of that caller passes one at a time (not measurable on two cores, see
// docs/performance-history.md change 33; a ceiling with more).
class VerifiedTokens {
 public:
  bool Find(absl::string_view secret, absl::string_view token, Caller* caller,
            absl::Time* expires) {
    Shard& shard = ShardFor(token);
    std::shared_lock<std::shared_mutex> lock(shard.mu);
    auto it = shard.entries.find(token);
    if (it == shard.entries.end() || it->second.secret != secret) return false;
    *caller = it->second.caller;
    *expires = it->second.expires;
    return true;
  }
  void Put(absl::string_view secret, const Caller& caller, absl::Time expires) {
    Shard& shard = ShardFor(caller.token);
    std::unique_lock<std::shared_mutex> lock(shard.mu);
    if (shard.entries.size() >= kMaxPerShard) shard.entries.clear();
    shard.entries[caller.token] = Entry{std::string(secret), caller, expires};
  }

 private:
  static constexpr size_t kMaxPerShard = 1024;
  struct Entry {
    std::string secret;
    Caller caller;
    absl::Time expires;
  };
  struct Shard {
    std::shared_mutex mu;
    absl::flat_hash_map<std::string, Entry> entries;
  };
  Shard& ShardFor(absl::string_view token) {
    return shards_[absl::Hash<absl::string_view>{}(token) % shards_.size()];
  }
  std::array<Shard, 16> shards_;
};

VerifiedTokens& Verified() {
  static auto* tokens = new VerifiedTokens();
  return *tokens;
}

absl::StatusOr<Caller> VerifyUncached(absl::string_view secret, absl::string_view token,
                                      absl::Time now, absl::Time* expires);

}  // namespace

absl::StatusOr<Caller> VerifyToken(absl::string_view secret, absl::string_view token,
                                   absl::Time now) {
  Caller caller;
  absl::Time expires;
  if (Verified().Find(secret, token, &caller, &expires)) {
    if (expires <= now) return Unauthenticated("The token has expired.");
    return caller;
  }
  auto verified = VerifyUncached(secret, token, now, &expires);
  if (verified.ok()) Verified().Put(secret, *verified, expires);
  return verified;
}

namespace {

absl::StatusOr<Caller> VerifyUncached(absl::string_view secret, absl::string_view token,
                                      absl::Time now, absl::Time* expires) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return Unauthenticated("The token is not a JWT.");
  std::string header, payload, signature;
  if (!absl::WebSafeBase64Unescape(parts[0], &header) ||
      !absl::WebSafeBase64Unescape(parts[1], &payload) ||
      !absl::WebSafeBase64Unescape(parts[2], &signature)) {
    return Unauthenticated("The token is not valid base64url.");
  }
  google::protobuf::Struct header_json;
  if (!google::protobuf::util::JsonStringToMessage(header, &header_json).ok() ||
      header_json.fields().count("alg") == 0 ||
      header_json.fields().at("alg").string_value() != "HS256") {
    return Unauthenticated("The token must be signed with HS256.");
  }
  std::string expected = Hmac(secret, absl::StrCat(parts[0], ".", parts[1]));
  if (expected.size() != signature.size() ||
      CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) != 0) {
    return Unauthenticated("The token signature is invalid.");
  }
  google::protobuf::Struct claims;
  if (!google::protobuf::util::JsonStringToMessage(payload, &claims).ok()) {
    return Unauthenticated("The token claims are not JSON.");
  }
  const auto& f = claims.fields();
  auto exp = f.find("exp");
  if (exp == f.end() || !exp->second.has_number_value()) {
    return Unauthenticated("The token has no expiry (exp).");
  }
  *expires = absl::FromUnixSeconds(static_cast<int64_t>(exp->second.number_value()));
  if (*expires <= now) return Unauthenticated("The token has expired.");
  Caller caller;
  if (auto it = f.find("sub"); it != f.end()) caller.subject = it->second.string_value();
  if (auto it = f.find("account"); it != f.end()) caller.account = it->second.string_value();
  if (auto it = f.find("roles"); it != f.end()) {
    for (const auto& v : it->second.list_value().values()) {
      auto role = ParseRole(v.string_value());
      if (role.ok()) caller.roles.insert(*role);
    }
  }
  if (caller.account.empty() && !caller.Has(Role::kService)) {
    return Unauthenticated("The token names no account.");
  }
  caller.token = std::string(token);
  return caller;
}

}  // namespace

absl::StatusOr<Caller> Authenticator::Authenticate(const grpc::ServerContextBase& context) const {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return Unauthenticated("The call carries no token.");
  absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  if (value.size() <= kBearer.size() || !absl::StartsWithIgnoreCase(value, kBearer)) {
    return Unauthenticated("The authorization header is not 'Bearer <token>'.");
  }
  value.remove_prefix(kBearer.size());
  return VerifyToken(secret_, value, absl::Now());
}

std::string Authenticator::ServiceToken(absl::string_view service) const {
  return SignToken(
      secret_,
      Claims{std::string(service), "", {Role::kService}, absl::Now() + absl::Hours(24 * 365)});
}

absl::Status Require(const Caller& caller, Role role) {
  if (caller.Has(role)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("This call needs the ", RoleName(role),
                                                  " role in account ", caller.account, "."));
}

bool OwnsAccount(const Caller& caller, absl::string_view account) {
  return !caller.account.empty() && caller.account == account;
}

}  // namespace mci::auth
