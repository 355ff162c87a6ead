#include "services/templates/names.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mci::templates {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;

// Ids of other services' resources (accounts, MCIs) are checked loosely: no separators.
bool IsSegment(absl::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

// Splits "x@N" into x and N (0 without a suffix); false on a bad suffix.
bool SplitRevision(absl::string_view text, absl::string_view* base, int64_t* revision) {
  auto at = text.find('@');
  if (at == absl::string_view::npos) {
    *base = text;
    *revision = 0;
    return true;
  }
  *base = text.substr(0, at);
  absl::string_view digits = text.substr(at + 1);
  if (digits.empty() || !absl::ascii_isdigit(digits[0])) return false;
  return absl::SimpleAtoi(digits, revision) && *revision > 0;
}

absl::Status BadName(absl::string_view field, absl::string_view name, absl::string_view pattern) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " \"", name, "\" is not a valid name; use ", pattern, "."));
}

}  // namespace

std::string TemplateResourceName(absl::string_view account, absl::string_view template_id,
                                 int64_t revision) {
  std::string name = absl::StrCat("accounts/", account, "/serverTemplates/", template_id);
  if (revision > 0) absl::StrAppend(&name, "@", revision);
  return name;
}

std::string MultiCloudImageResourceName(absl::string_view head, int64_t revision) {
  if (revision <= 0) return std::string(head);
  return absl::StrCat(head, "@", revision);
}

std::string TemplateName::Head() const { return TemplateResourceName(account, template_id, 0); }
std::string TemplateName::Full() const {
  return TemplateResourceName(account, template_id, revision);
}
std::string MultiCloudImageName::Head() const {
  return absl::StrCat("accounts/", account, "/multiCloudImages/", mci_id);
}
std::string MultiCloudImageName::Full() const {
  return MultiCloudImageResourceName(Head(), revision);
}

absl::StatusOr<TemplateName> ParseTemplateName(absl::string_view name, absl::string_view field) {
  constexpr absl::string_view kPattern =
      "accounts/{account}/serverTemplates/{template} or .../{template}@{revision}";
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required: ", kPattern, "."));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  absl::string_view id;
  TemplateName out;
  if (parts.size() != 4 || parts[0] != "accounts" || parts[2] != "serverTemplates" ||
      !IsSegment(parts[1]) || !SplitRevision(parts[3], &id, &out.revision) || !IsSegment(id)) {
    return BadName(field, name, kPattern);
  }
  out.account = std::string(parts[1]);
  out.template_id = std::string(id);
  return out;
}

absl::StatusOr<MultiCloudImageName> ParseMultiCloudImageName(absl::string_view name,
                                                             absl::string_view field) {
  constexpr absl::string_view kPattern =
      "accounts/{account}/multiCloudImages/{mci} (HEAD) or .../{mci}@{revision}";
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is required: ", kPattern, "."));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  absl::string_view id;
  MultiCloudImageName out;
  if (parts.size() != 4 || parts[0] != "accounts" || parts[2] != "multiCloudImages" ||
      !IsSegment(parts[1]) || !SplitRevision(parts[3], &id, &out.revision) || !IsSegment(id)) {
    return BadName(field, name, kPattern);
  }
  out.account = std::string(parts[1]);
  out.mci_id = std::string(id);
  return out;
}

absl::StatusOr<std::string> ParseAccountName(absl::string_view name, absl::string_view field) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 || parts[0] != "accounts" || !IsSegment(parts[1])) {
    return BadName(field, name, "accounts/{account}");
  }
  return std::string(parts[1]);
}

absl::Status ValidateCloudName(absl::string_view name, absl::string_view field) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 2 || parts[0] != "clouds" || !IsSegment(parts[1])) {
    return BadName(field, name, "clouds/{cloud}, e.g. clouds/aws-us-east-1");
  }
  return absl::OkStatus();
}

absl::Status ValidateTemplateId(absl::string_view id) {
  bool ok = !id.empty() && id.size() <= 63 && absl::ascii_islower(id[0]);
  for (char c : id) {
    ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "server_template_id \"", id,
      "\" is not valid: use 1-63 characters, lower-case letters, digits and '-', starting with a "
      "letter (or leave it empty to have one generated)."));
}

std::string GenerateTemplateId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string id = "st-";
  for (int i = 0; i < 12; ++i) id.push_back(kAlphabet[rng() % 36]);
  return id;
}

std::string Etag(int64_t version) { return absl::StrCat("v", version); }

absl::StatusOr<int64_t> ParseEtag(absl::string_view etag) {
  if (etag.empty()) return 0;
  int64_t version = 0;
  if (etag.size() < 2 || etag[0] != 'v' || !absl::SimpleAtoi(etag.substr(1), &version) ||
      version <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("etag \"", etag,
                     "\" is not one this service issued; pass the etag of the ServerTemplate as "
                     "last read, or none."));
  }
  return version;
}

std::string EncodePageToken(absl::string_view kind, const std::vector<int64_t>& key) {
  return absl::WebSafeBase64Escape(absl::StrCat(kind, ":", absl::StrJoin(key, ":")));
}

absl::StatusOr<std::vector<int64_t>> DecodePageToken(absl::string_view kind,
                                                     absl::string_view token, size_t size) {
  std::vector<int64_t> key(size, 0);
  if (token.empty()) return key;
  absl::Status bad = absl::InvalidArgumentError(
      "page_token is not one this method issued; pass the next_page_token of the previous "
      "response unchanged, with the same other request fields.");
  std::string text;
  if (!absl::WebSafeBase64Unescape(token, &text)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() != size + 1 || parts[0] != kind) return bad;
  for (size_t i = 0; i < size; ++i) {
    if (!absl::SimpleAtoi(parts[i + 1], &key[i])) return bad;
  }
  return key;
}

absl::StatusOr<int> PageSize(int32_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must not be negative (got ", requested, "); use 0 for the default ",
                     kDefaultPageSize, ", at most ", kMaxPageSize, "."));
  }
  if (requested == 0) return kDefaultPageSize;
  return requested > kMaxPageSize ? kMaxPageSize : requested;
}

std::string BumpVersion(absl::string_view display_name) {
  auto space = display_name.rfind(' ');
  absl::string_view last =
      space == absl::string_view::npos ? display_name : display_name.substr(space + 1);
  int64_t n = 0;
  if (last.size() >= 2 && (last[0] == 'v' || last[0] == 'V') && absl::ascii_isdigit(last[1]) &&
      absl::SimpleAtoi(last.substr(1), &n)) {
    return absl::StrCat(display_name.substr(0, display_name.size() - last.size()),
                        last.substr(0, 1), n + 1);
  }
  return absl::StrCat(display_name, " v2");
}

}  // namespace mci::templates
