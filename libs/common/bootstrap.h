#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/common/config.h"
#include "libs/common/db.h"

namespace mci {

// The settings every service takes (each flag also as MCI_<FLAG>).
struct ServiceSettings {
  std::string database_url;  // --database-url (required)
  std::string jwt_secret;    // --jwt-secret, or the first line of --jwt-secret-file (required)
  std::string nats_url;      // --nats-url
  std::string nats_ca_file;  // --nats-ca-file
  std::string grpc_address;  // --grpc-address
  std::string http_address;  // --http-address
  int db_pool_size = 8;      // --db-pool-size
};

// Reads the common flags (and --log-level), checks the required ones, waits up to 60 s for the
// database and applies the service's migrations. An error says which flag to fix.
absl::StatusOr<ServiceSettings> BootstrapService(const Config& config,
                                                 absl::string_view default_grpc_address,
                                                 absl::string_view default_http_address,
                                                 const std::vector<db::Migration>& migrations);

}  // namespace mci
