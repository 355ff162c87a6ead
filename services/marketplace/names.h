#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mci::marketplace {

// accounts/{account}/multiCloudImages/{mci}[@{revision}]
struct MultiCloudImageName {
  std::string account;
  std::string id;
  // 0 for HEAD.
  int64_t revision = 0;

  std::string Head() const;
  // The name as written: HEAD name, or name@N.
  std::string Full() const;
};

// `field` names the request field in error messages.
absl::StatusOr<MultiCloudImageName> ParseMultiCloudImageName(absl::string_view name,
                                                             absl::string_view field);
// publications/{publication} -> {publication}
absl::StatusOr<std::string> ParsePublicationName(absl::string_view name, absl::string_view field);
// accounts/{account} -> {account}
absl::StatusOr<std::string> ParseAccountName(absl::string_view name, absl::string_view field);
absl::Status ValidatePublicationId(absl::string_view id);

std::string PublicationName(absl::string_view id);
std::string AccountName(absl::string_view account);
// A fresh publication id: pub- and 16 hex digits.
std::string NewPublicationId();

// Opaque keyset page tokens: the position after which the next page starts, bound to the
// request's filters so that a token is not reused with other filters.
std::string EncodePageToken(int64_t after, absl::string_view filters);
// 0 for an empty token; INVALID_ARGUMENT for a token that is malformed or made for other filters.
absl::StatusOr<int64_t> DecodePageToken(absl::string_view token, absl::string_view filters);

}  // namespace mci::marketplace
