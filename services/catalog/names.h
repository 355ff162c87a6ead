#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mci::catalog {

// accounts/{account}/multiCloudImages/{mci}[@{revision}]; revision 0 is HEAD.
struct MciName {
  std::string account;
  std::string mci_id;
  int64_t revision = 0;

  std::string Head() const;
  // HEAD name, or name@N for a committed revision.
  std::string Full() const;
  std::string Key() const { return account + "/" + mci_id; }
};

struct SettingName {
  MciName mci;
  std::string cloud_id;
  std::string Full() const;
};

// clouds/{cloud}/<collection>/{id}, e.g. clouds/aws-us-east-1/images/ami-1.
struct CloudResourceName {
  std::string cloud_id;
  std::string id;
};

bool IsValidAccountId(absl::string_view id);
// [a-z][a-z0-9-]{0,62}
bool IsValidResourceId(absl::string_view id);
// Cloud ids and the ids of cloud resources (images, instance types): [A-Za-z0-9._-]{1,128}.
bool IsValidCloudResourceId(absl::string_view id);

absl::StatusOr<std::string> ParseAccountName(absl::string_view name);
absl::StatusOr<MciName> ParseMciName(absl::string_view name, bool allow_revision);
absl::StatusOr<SettingName> ParseSettingName(absl::string_view name);
absl::StatusOr<std::string> ParseCloudName(absl::string_view name, absl::string_view field);
absl::StatusOr<CloudResourceName> ParseCloudResourceName(absl::string_view name,
                                                         absl::string_view collection,
                                                         absl::string_view field);

std::string CloudName(absl::string_view cloud_id);
std::string ImageName(absl::string_view cloud_id, absl::string_view image_id);
std::string InstanceTypeName(absl::string_view cloud_id, absl::string_view type_id);

}  // namespace mci::catalog
