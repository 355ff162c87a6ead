// mcictl: developer and operator commands for the MCI services.
//   mcictl token --account A --roles designer,publisher [--subject S] [--ttl-hours H]
//                [--secret S | MCI_JWT_SECRET]
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/common/auth.h"
#include "libs/common/config.h"

namespace {

int Usage() {
  std::cerr << "usage: mcictl token --account ACCOUNT --roles ROLE[,ROLE...] [--subject NAME]\n"
               "                    [--ttl-hours N] [--secret SECRET (or MCI_JWT_SECRET)]\n"
               "roles: observer, actor, designer, library, publisher, admin, service\n";
  return 2;
}

int Token(const mci::Config& config) {
  std::string secret = config.String("secret", config.String("jwt-secret", ""));
  if (secret.empty()) {
    std::cerr << "mcictl: no secret: pass --secret or set MCI_JWT_SECRET.\n";
    return 2;
  }
  mci::auth::Claims claims;
  claims.account = config.String("account", "");
  claims.subject =
      config.String("subject", claims.account.empty() ? "mcictl" : "user@" + claims.account);
  for (absl::string_view name :
       absl::StrSplit(config.String("roles", "observer"), ',', absl::SkipWhitespace())) {
    auto role = mci::auth::ParseRole(name);
    if (!role.ok()) {
      std::cerr << "mcictl: " << role.status().message() << "\n";
      return 2;
    }
    claims.roles.push_back(*role);
  }
  if (claims.account.empty() && std::find(claims.roles.begin(), claims.roles.end(),
                                          mci::auth::Role::kService) == claims.roles.end()) {
    std::cerr << "mcictl: --account is required (except for service tokens).\n";
    return 2;
  }
  auto ttl = config.Int("ttl-hours", 24);
  if (!ttl.ok()) {
    std::cerr << "mcictl: " << ttl.status().message() << "\n";
    return 2;
  }
  claims.expires = absl::Now() + absl::Hours(*ttl);
  std::cout << mci::auth::SignToken(secret, claims) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto config = mci::Config::Parse(argc, argv);
  if (!config.ok() || config->args().empty()) return Usage();
  if (config->args()[0] == "token") return Token(*config);
  return Usage();
}
