#pragma once

// Resource names, ids and page tokens of the template-reference service.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mci::templates {

// accounts/{account}/serverTemplates/{template}[@{revision}]
struct TemplateName {
  std::string account;
  std::string template_id;
  // 0 for HEAD.
  int64_t revision = 0;

  std::string Head() const;
  std::string Full() const;
};

// accounts/{account}/multiCloudImages/{mci}[@{revision}]
struct MultiCloudImageName {
  std::string account;
  std::string mci_id;
  // 0 for HEAD.
  int64_t revision = 0;

  std::string Head() const;
  std::string Full() const;
};

std::string TemplateResourceName(absl::string_view account, absl::string_view template_id,
                                 int64_t revision);
// `head` is the MCI's HEAD name; revision 0 gives it back unchanged.
std::string MultiCloudImageResourceName(absl::string_view head, int64_t revision);

// INVALID_ARGUMENT naming `field` when the text is not such a name.
absl::StatusOr<TemplateName> ParseTemplateName(absl::string_view name, absl::string_view field);
absl::StatusOr<MultiCloudImageName> ParseMultiCloudImageName(absl::string_view name,
                                                             absl::string_view field);
// accounts/{account} -> account.
absl::StatusOr<std::string> ParseAccountName(absl::string_view name, absl::string_view field);
// clouds/{cloud}
absl::Status ValidateCloudName(absl::string_view name, absl::string_view field);
// A server_template_id chosen by the caller: [a-z][a-z0-9-]{0,62}.
absl::Status ValidateTemplateId(absl::string_view id);
// A fresh id for templates created without one.
std::string GenerateTemplateId();

// Etags of template HEADs: "v<version>". An etag this service did not issue is INVALID_ARGUMENT.
std::string Etag(int64_t version);
// 0 when `etag` is empty (no check wanted).
absl::StatusOr<int64_t> ParseEtag(absl::string_view etag);

// Opaque keyset page tokens carrying the sort key of the last row returned.
std::string EncodePageToken(absl::string_view kind, const std::vector<int64_t>& key);
// An empty token gives a key of `size` zeros.
absl::StatusOr<std::vector<int64_t>> DecodePageToken(absl::string_view kind,
                                                     absl::string_view token, size_t size);
// page_size: 0 -> default, capped at the maximum, negative -> INVALID_ARGUMENT.
absl::StatusOr<int> PageSize(int32_t requested);

// The display name of a clone: "Base v8" -> "Base v9", otherwise " v2" is appended.
std::string BumpVersion(absl::string_view display_name);

}  // namespace mci::templates
