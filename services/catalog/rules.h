#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mci/catalog/v1/catalog.pb.h"

namespace mci::catalog {

inline constexpr size_t kMaxUserDataBytes = size_t{16} * 1024;
inline constexpr size_t kMaxDisplayName = 255;
inline constexpr size_t kMaxDescription = 4096;
inline constexpr char kAgentTag[] = "provides:rs_agent_type=right_link";

// namespace:predicate=value; namespace and predicate [A-Za-z0-9_-]+, value printable, no spaces
// around; at most 255 characters in all.
absl::Status ValidateTag(absl::string_view tag);

// The display name of a clone: "Base v8" -> "Base v9"; a name without a version gets " v2".
std::string NextCloneDisplayName(absl::string_view display_name);

absl::Status ValidateDisplayName(absl::string_view display_name);
absl::Status ValidateDescription(absl::string_view description);

// Opaque page tokens: a cursor bound to the query that issued it.
std::string EncodePageToken(absl::string_view cursor, absl::string_view query_fingerprint);
absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view query_fingerprint);
// 0 -> default 50; capped at 1000; negative -> INVALID_ARGUMENT.
absl::StatusOr<int> PageSize(int32_t requested);

// What ValidateMultiCloudImage looks at for one setting.
struct SettingFacts {
  std::string cloud;  // clouds/{cloud}
  bool image_found = false;
  mci::catalog::v1::Image image;  // when found
  bool image_usable = false;      // public, own, or shared with the MCI's account
  bool instance_type_found = false;
  mci::catalog::v1::InstanceType instance_type;
};

std::vector<mci::catalog::v1::Finding> ComputeFindings(const std::vector<std::string>& tags,
                                                       const std::vector<SettingFacts>& settings,
                                                       absl::string_view account);

std::string ArchitectureName(mci::catalog::v1::Architecture arch);

}  // namespace mci::catalog
