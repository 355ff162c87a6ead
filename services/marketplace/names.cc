#include "services/marketplace/names.h"

#include <random>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace mci::marketplace {
namespace {

// Account and MCI ids as the catalog issues them: letters, digits, '-', '_' and '.'.
bool IsResourceId(absl::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

constexpr absl::string_view kPageTokenVersion = "p1";

}  // namespace

std::string MultiCloudImageName::Head() const {
  return absl::StrCat("accounts/", account, "/multiCloudImages/", id);
}

std::string MultiCloudImageName::Full() const {
  return revision == 0 ? Head() : absl::StrCat(Head(), "@", revision);
}

absl::StatusOr<MultiCloudImageName> ParseMultiCloudImageName(absl::string_view name,
                                                             absl::string_view field) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " must be accounts/{account}/multiCloudImages/{mci} or ...@{revision}, got \"", name,
        "\"."));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 4 || parts[0] != "accounts" || parts[2] != "multiCloudImages" ||
      !IsResourceId(parts[1])) {
    return bad();
  }
  MultiCloudImageName out;
  out.account = std::string{parts[1]};
  absl::string_view id = parts[3];
  if (auto at = id.find('@'); at != absl::string_view::npos) {
    if (!absl::SimpleAtoi(id.substr(at + 1), &out.revision) || out.revision < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " names revision \"", id.substr(at + 1),
                       "\"; committed revisions are numbered 1, 2, ... (omit @ for HEAD)."));
    }
    id = id.substr(0, at);
  }
  if (!IsResourceId(id)) return bad();
  out.id = std::string{id};
  return out;
}

absl::StatusOr<std::string> ParsePublicationName(absl::string_view name, absl::string_view field) {
  if (!absl::ConsumePrefix(&name, "publications/") || !IsResourceId(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be publications/{publication}, got \"", name, "\"."));
  }
  return std::string{name};
}

absl::StatusOr<std::string> ParseAccountName(absl::string_view name, absl::string_view field) {
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, "accounts/") || !IsResourceId(rest)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be accounts/{account}, got \"", name, "\"."));
  }
  return std::string{rest};
}

absl::Status ValidatePublicationId(absl::string_view id) {
  bool ok = !id.empty() && id.size() <= 63 && absl::ascii_islower(id[0]);
  for (char c : id) {
    ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "publication_id must match [a-z][a-z0-9-]{0,62}, got \"", id, "\"; or leave it empty."));
}

std::string PublicationName(absl::string_view id) { return absl::StrCat("publications/", id); }

std::string AccountName(absl::string_view account) { return absl::StrCat("accounts/", account); }

std::string NewPublicationId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("pub-%016x", rng());
}

std::string EncodePageToken(int64_t after, absl::string_view filters) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenVersion, "\n", after, "\n", filters));
}

absl::StatusOr<int64_t> DecodePageToken(absl::string_view token, absl::string_view filters) {
  if (token.empty()) return 0;
  auto bad = absl::InvalidArgumentError(
      "page_token is not valid for this request; pass the next_page_token of the previous "
      "response with the same filters, or none for the first page.");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return bad;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, absl::MaxSplits('\n', 2));
  int64_t after = 0;
  if (parts.size() != 3 || parts[0] != kPageTokenVersion || !absl::SimpleAtoi(parts[1], &after) ||
      after <= 0 || parts[2] != filters) {
    return bad;
  }
  return after;
}

}  // namespace mci::marketplace
