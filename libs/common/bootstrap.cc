#include "libs/common/bootstrap.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "libs/common/log.h"

namespace mci {

absl::StatusOr<ServiceSettings> BootstrapService(const Config& config,
                                                 absl::string_view default_grpc_address,
                                                 absl::string_view default_http_address,
                                                 const std::vector<db::Migration>& migrations) {
  log::Level level;
  if (log::ParseLevel(config.String("log-level", "info"), &level)) log::SetMinLevel(level);
  ServiceSettings s;
  s.database_url = config.String("database-url", "");
  s.jwt_secret = config.String("jwt-secret", "");
  if (std::string file = config.String("jwt-secret-file", "");
      s.jwt_secret.empty() && !file.empty()) {
    std::ifstream in(file);
    if (!in)
      return absl::InvalidArgumentError(absl::StrCat("Cannot read --jwt-secret-file ", file, "."));
    std::getline(in, s.jwt_secret);
  }
  if (s.database_url.empty()) {
    return absl::InvalidArgumentError("--database-url (MCI_DATABASE_URL) is required.");
  }
  if (s.jwt_secret.empty()) {
    return absl::InvalidArgumentError(
        "--jwt-secret (MCI_JWT_SECRET) or --jwt-secret-file (MCI_JWT_SECRET_FILE) is required.");
  }
  s.nats_url = config.String("nats-url", "nats://127.0.0.1:4222");
  s.nats_ca_file = config.String("nats-ca-file", "");
  s.grpc_address = config.String("grpc-address", default_grpc_address);
  s.http_address = config.String("http-address", default_http_address);
  auto pool_size = config.Int("db-pool-size", 8);
  if (!pool_size.ok()) return pool_size.status();
  s.db_pool_size = *pool_size;
  if (auto st = db::WaitForDatabase(s.database_url, absl::Seconds(60)); !st.ok()) return st;
  if (auto st = db::Migrate(s.database_url, migrations); !st.ok()) return st;
  return s;
}

}  // namespace mci
