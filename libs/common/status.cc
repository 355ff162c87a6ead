#include "libs/common/status.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"

namespace mci {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view peer) {
  if (status.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kDeadlineExceeded) code = absl::StatusCode::kUnavailable;
  if (code == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(
        absl::StrCat(peer, " is unavailable (", status.error_message(), "); try again later."));
  }
  return absl::Status(code, status.error_message());
}

absl::Status FromDatabaseException(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
      dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnavailableError("The database is unavailable; try again later.");
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat("Already exists: ", e.what()));
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return absl::AbortedError("A concurrent change got in the way; retry the request.");
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    // 57P01 admin shutdown, 57P03 cannot connect now, 08xxx connection exceptions.
    const std::string& state = sql->sqlstate();
    if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03") {
      return absl::UnavailableError("The database is unavailable; try again later.");
    }
  }
  return absl::InternalError(absl::StrCat("Database error: ", e.what()));
}

}  // namespace mci
