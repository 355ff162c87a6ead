#include "services/catalog/names.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mci::catalog {
namespace {

absl::Status BadName(absl::string_view what, absl::string_view name, absl::string_view form) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " \"", name, "\" is not a valid name; expected ", form, "."));
}

constexpr char kMciForm[] = "accounts/{account}/multiCloudImages/{mci} or ...{mci}@{revision}";

}  // namespace

std::string MciName::Head() const {
  return absl::StrCat("accounts/", account, "/multiCloudImages/", mci_id);
}

std::string MciName::Full() const {
  return revision == 0 ? Head() : absl::StrCat(Head(), "@", revision);
}

std::string SettingName::Full() const { return absl::StrCat(mci.Full(), "/settings/", cloud_id); }

bool IsValidAccountId(absl::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  for (char c : id) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-' && c != '_') return false;
  }
  return true;
}

bool IsValidResourceId(absl::string_view id) {
  if (id.empty() || id.size() > 63 || !absl::ascii_islower(id[0])) return false;
  for (char c : id) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

bool IsValidCloudResourceId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

absl::StatusOr<std::string> ParseAccountName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 || parts[0] != "accounts" || !IsValidAccountId(parts[1])) {
    return BadName("parent", name, "accounts/{account}");
  }
  return std::string(parts[1]);
}

absl::StatusOr<MciName> ParseMciName(absl::string_view name, bool allow_revision) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("name is required: ", kMciForm, "."));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 4 || parts[0] != "accounts" || parts[2] != "multiCloudImages" ||
      !IsValidAccountId(parts[1])) {
    return BadName("MultiCloud Image", name, kMciForm);
  }
  MciName out;
  out.account = std::string(parts[1]);
  absl::string_view id = parts[3];
  if (auto at = id.find('@'); at != absl::string_view::npos) {
    absl::string_view rev = id.substr(at + 1);
    id = id.substr(0, at);
    if (!absl::SimpleAtoi(rev, &out.revision) || out.revision < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", name, "\": the revision after @ must be a committed revision number (1, 2, ...)."));
    }
    if (!allow_revision) {
      return absl::FailedPreconditionError(
          absl::StrCat(name, " is a committed revision and cannot be changed; use the HEAD name ",
                       "(without @", rev, "), or clone the revision to get an editable copy."));
    }
  }
  if (!IsValidResourceId(id)) return BadName("MultiCloud Image", name, kMciForm);
  out.mci_id = std::string(id);
  return out;
}

absl::StatusOr<SettingName> ParseSettingName(absl::string_view name) {
  auto pos = name.rfind("/settings/");
  if (pos == absl::string_view::npos) {
    return BadName("setting", name, "accounts/{account}/multiCloudImages/{mci}/settings/{cloud}");
  }
  auto mci = ParseMciName(name.substr(0, pos), /*allow_revision=*/true);
  if (!mci.ok()) return mci.status();
  SettingName out{*mci, std::string(name.substr(pos + 10))};
  if (!IsValidCloudResourceId(out.cloud_id)) {
    return BadName("setting", name, "accounts/{account}/multiCloudImages/{mci}/settings/{cloud}");
  }
  return out;
}

absl::StatusOr<std::string> ParseCloudName(absl::string_view name, absl::string_view field) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required: clouds/{cloud}."));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 || parts[0] != "clouds" || !IsValidCloudResourceId(parts[1])) {
    return BadName(field, name, "clouds/{cloud}, e.g. clouds/aws-us-east-1");
  }
  return std::string(parts[1]);
}

absl::StatusOr<CloudResourceName> ParseCloudResourceName(absl::string_view name,
                                                         absl::string_view collection,
                                                         absl::string_view field) {
  std::string form = absl::StrCat("clouds/{cloud}/", collection, "/{id}");
  if (name.empty())
    return absl::InvalidArgumentError(absl::StrCat(field, " is required: ", form, "."));
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 4 || parts[0] != "clouds" || parts[2] != collection ||
      !IsValidCloudResourceId(parts[1]) || !IsValidCloudResourceId(parts[3])) {
    return BadName(field, name, form);
  }
  return CloudResourceName{std::string(parts[1]), std::string(parts[3])};
}

std::string CloudName(absl::string_view cloud_id) { return absl::StrCat("clouds/", cloud_id); }
std::string ImageName(absl::string_view cloud_id, absl::string_view image_id) {
  return absl::StrCat("clouds/", cloud_id, "/images/", image_id);
}
std::string InstanceTypeName(absl::string_view cloud_id, absl::string_view type_id) {
  return absl::StrCat("clouds/", cloud_id, "/instanceTypes/", type_id);
}

}  // namespace mci::catalog
