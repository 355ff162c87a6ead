#pragma once

#include <grpcpp/grpcpp.h>

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mci {

// The one mapping from an internal status to the status a gRPC caller sees.
grpc::Status ToGrpcStatus(const absl::Status& status);

// A peer's gRPC answer as an internal status (same code and message, prefixed with the peer).
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view peer);

// A libpqxx exception as a status: lost connections are UNAVAILABLE, unique violations
// ALREADY_EXISTS, serialization failures ABORTED, anything else INTERNAL.
absl::Status FromDatabaseException(const std::exception& e);

}  // namespace mci
