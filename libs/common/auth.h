#pragma once

#include <grpcpp/grpcpp.h>

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mci::auth {

// Roles per account, carried in the caller's token. Every role includes observer.
enum class Role { kObserver, kActor, kDesigner, kLibrary, kPublisher, kAdmin, kService };

absl::string_view RoleName(Role role);
absl::StatusOr<Role> ParseRole(absl::string_view name);

// Who is calling: from a verified token.
struct Caller {
  std::string subject;
  // The account id (the {account} of accounts/{account}); empty for service identities.
  std::string account;
  std::set<Role> roles;
  // The raw bearer token, forwarded on calls made on the caller's behalf.
  std::string token;

  bool Has(Role role) const;
  // accounts/{account}
  std::string AccountName() const { return "accounts/" + account; }
};

struct Claims {
  std::string subject;
  std::string account;
  std::vector<Role> roles;
  absl::Time expires;
};

// HS256 JWT with claims sub, account, roles (array of names), iat, exp.
std::string SignToken(absl::string_view secret, const Claims& claims);
absl::StatusOr<Caller> VerifyToken(absl::string_view secret, absl::string_view token,
                                   absl::Time now);

// Reads `authorization: Bearer <jwt>` and verifies it: UNAUTHENTICATED when missing or bad.
class Authenticator {
 public:
  explicit Authenticator(std::string secret) : secret_(std::move(secret)) {}
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) const;
  // A token for this service's own internal calls (role service).
  std::string ServiceToken(absl::string_view service) const;
  const std::string& secret() const { return secret_; }

 private:
  std::string secret_;
};

// PERMISSION_DENIED unless the caller holds `role`.
absl::Status Require(const Caller& caller, Role role);
// NOT_FOUND-safe account check: OK when `account` is the caller's.
bool OwnsAccount(const Caller& caller, absl::string_view account);

}  // namespace mci::auth
