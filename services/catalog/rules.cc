#include "services/catalog/rules.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mci::catalog {

using mci::catalog::v1::Finding;

absl::Status ValidateTag(absl::string_view tag) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("Tag \"", tag, "\" is not valid: ", why,
                     ". Tags look like namespace:predicate=value, e.g. ", kAgentTag, "."));
  };
  if (tag.size() > 255) return bad("it is longer than 255 characters");
  auto colon = tag.find(':');
  auto eq = tag.find('=');
  if (colon == absl::string_view::npos || eq == absl::string_view::npos || eq < colon) {
    return bad("it needs a ':' and then a '='");
  }
  auto word_ok = [](absl::string_view w) {
    return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
      return absl::ascii_isalnum(c) || c == '_' || c == '-';
    });
  };
  if (!word_ok(tag.substr(0, colon))) return bad("the namespace must be letters, digits, _ or -");
  if (!word_ok(tag.substr(colon + 1, eq - colon - 1))) {
    return bad("the predicate must be letters, digits, _ or -");
  }
  absl::string_view value = tag.substr(eq + 1);
  if (value.empty()) return bad("the value is empty");
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("the value has control characters");
  }
  if (absl::ascii_isspace(value.front()) || absl::ascii_isspace(value.back())) {
    return bad("the value starts or ends with a space");
  }
  return absl::OkStatus();
}

std::string NextCloneDisplayName(absl::string_view display_name) {
  absl::string_view name = absl::StripTrailingAsciiWhitespace(display_name);
  size_t end = name.size();
  size_t digits = end;
  while (digits > 0 && absl::ascii_isdigit(name[digits - 1])) --digits;
  if (digits < end && digits >= 1 && (name[digits - 1] == 'v' || name[digits - 1] == 'V') &&
      (digits == 1 || name[digits - 2] == ' ')) {
    uint64_t version = 0;
    if (absl::SimpleAtoi(name.substr(digits), &version) && version < (1ull << 62)) {
      return absl::StrCat(name.substr(0, digits), version + 1);
    }
  }
  std::string out = absl::StrCat(name, " v2");
  if (out.size() > kMaxDisplayName) out = std::string(name.substr(0, kMaxDisplayName - 3)) + " v2";
  return out;
}

absl::Status ValidateDisplayName(absl::string_view display_name) {
  if (absl::StripAsciiWhitespace(display_name).empty()) {
    return absl::InvalidArgumentError(
        "display_name is required: give the MultiCloud Image a short nickname.");
  }
  if (display_name.size() > kMaxDisplayName) {
    return absl::InvalidArgumentError(absl::StrCat("display_name is ", display_name.size(),
                                                   " bytes; the limit is ", kMaxDisplayName, "."));
  }
  return absl::OkStatus();
}

absl::Status ValidateDescription(absl::string_view description) {
  if (description.size() > kMaxDescription) {
    return absl::InvalidArgumentError(absl::StrCat("description is ", description.size(),
                                                   " bytes; the limit is ", kMaxDescription, "."));
  }
  return absl::OkStatus();
}

std::string EncodePageToken(absl::string_view cursor, absl::string_view query_fingerprint) {
  return absl::WebSafeBase64Escape(absl::StrCat("v1|", query_fingerprint, "|", cursor));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view query_fingerprint) {
  if (token.empty()) return std::string();
  std::string raw;
  std::string prefix = absl::StrCat("v1|", query_fingerprint, "|");
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.rfind(prefix, 0) != 0) {
    return absl::InvalidArgumentError(
        "page_token is not valid for this request; pass the next_page_token of the previous "
        "page with the same filters, or none for the first page.");
  }
  return raw.substr(prefix.size());
}

absl::StatusOr<int> PageSize(int32_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError("page_size must not be negative (0 means the default, 50).");
  }
  if (requested == 0) return 50;
  return std::min(requested, 1000);
}

std::string ArchitectureName(mci::catalog::v1::Architecture arch) {
  switch (arch) {
    case mci::catalog::v1::I386:
      return "i386 (32-bit)";
    case mci::catalog::v1::X86_64:
      return "x86_64 (64-bit)";
    default:
      return "unspecified";
  }
}

std::vector<Finding> ComputeFindings(const std::vector<std::string>& tags,
                                     const std::vector<SettingFacts>& settings,
                                     absl::string_view account) {
  std::vector<Finding> findings;
  auto add = [&](Finding::Severity severity, absl::string_view code, std::string message,
                 absl::string_view cloud = "") {
    Finding f;
    f.set_severity(severity);
    f.set_code(std::string(code));
    f.set_message(std::move(message));
    f.set_cloud(std::string(cloud));
    findings.push_back(std::move(f));
  };
  if (std::find(tags.begin(), tags.end(), kAgentTag) == tags.end()) {
    add(Finding::WARNING, "MISSING_AGENT_TAG",
        absl::StrCat("The tag ", kAgentTag,
                     " is missing: without it scripts will not run on servers launched from this "
                     "MultiCloud Image. Add it with AddTags."));
  }
  if (settings.empty()) {
    add(Finding::ERROR, "NO_CLOUDS",
        "The MultiCloud Image has no clouds: add a setting (image and instance type) for at "
        "least one cloud.");
  }
  std::set<std::string> oses, arches, agents;
  for (const SettingFacts& s : settings) {
    if (!s.image_found) {
      add(Finding::ERROR, "IMAGE_MISSING",
          absl::StrCat("The image of ", s.cloud, " no longer exists; pick another image."),
          s.cloud);
      continue;
    }
    oses.insert(s.image.os());
    arches.insert(ArchitectureName(s.image.architecture()));
    agents.insert(s.image.agent_version());
    if (!s.image_usable) {
      add(Finding::ERROR, "IMAGE_NOT_SHARED",
          absl::StrCat("The image ", s.image.name(), " is private to ", s.image.owner(),
                       " and not shared with accounts/", account,
                       ": ask its owner to share it, or pick another image."),
          s.cloud);
    }
    if (!s.instance_type_found) {
      add(Finding::ERROR, "INSTANCE_TYPE_MISSING",
          absl::StrCat("The instance type of ", s.cloud, " no longer exists; pick another."),
          s.cloud);
    } else if (std::find(s.instance_type.architectures().begin(),
                         s.instance_type.architectures().end(),
                         s.image.architecture()) == s.instance_type.architectures().end()) {
      add(Finding::ERROR, "INSTANCE_TYPE_MISMATCH",
          absl::StrCat("Instance type ", s.instance_type.name(), " does not support the ",
                       ArchitectureName(s.image.architecture()), " image ", s.image.name(),
                       "; pick an instance type for that architecture."),
          s.cloud);
    }
  }
  auto mixed = [&](const std::set<std::string>& values, absl::string_view code,
                   absl::string_view what) {
    if (values.size() > 1) {
      add(Finding::WARNING, code,
          absl::StrCat("The images differ in ", what, " across clouds (",
                       absl::StrJoin(values, ", "),
                       "): an MCI should point at copies of the same image in every cloud; "
                       "create a separate MCI for each kind."));
    }
  };
  mixed(oses, "MIXED_OS", "operating system");
  mixed(arches, "MIXED_ARCHITECTURE", "architecture");
  mixed(agents, "MIXED_AGENT_VERSION", "RightLink agent version");
  return findings;
}

}  // namespace mci::catalog
