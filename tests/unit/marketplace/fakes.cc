#include "tests/unit/marketplace/fakes.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/marketplace/names.h"

namespace mci::marketplace::testing {

absl::Status FakeRepository::InsertPublication(const PublicationRecord& publication,
                                               const std::string& request_id) {
  for (const auto& p : publications_) {
    if (p.id == publication.id ||
        (publication.revision > 0 && p.multi_cloud_image == publication.multi_cloud_image &&
         p.revision == publication.revision)) {
      return absl::AlreadyExistsError("duplicate publication");
    }
  }
  if (!request_id.empty() && request_ids_.count({publication.publisher, request_id}) > 0) {
    return absl::AlreadyExistsError("duplicate request id");
  }
  PublicationRecord stored = publication;
  stored.seq = ++seq_;
  stored.create_time = stored.update_time = absl::FromUnixSeconds(1700000000 + seq_);
  std::sort(stored.shared_with.begin(), stored.shared_with.end());
  publications_.push_back(stored);
  if (!request_id.empty()) request_ids_[{publication.publisher, request_id}] = publication.id;
  return absl::OkStatus();
}

absl::StatusOr<PublicationRecord> FakeRepository::GetPublication(const std::string& id) {
  for (const auto& p : publications_) {
    if (p.id == id) return p;
  }
  return absl::NotFoundError("no publication");
}

absl::StatusOr<std::optional<PublicationRecord>> FakeRepository::FindByRequestId(
    const std::string& publisher, const std::string& request_id) {
  auto it = request_ids_.find({publisher, request_id});
  if (it == request_ids_.end()) return std::optional<PublicationRecord>();
  auto p = GetPublication(it->second);
  if (!p.ok()) return p.status();
  return std::optional<PublicationRecord>(*p);
}

absl::StatusOr<std::optional<PublicationRecord>> FakeRepository::FindByRevision(
    const std::string& multi_cloud_image, int64_t revision) {
  for (const auto& p : publications_) {
    if (p.multi_cloud_image == multi_cloud_image && p.revision == revision) {
      return std::optional<PublicationRecord>(p);
    }
  }
  return std::optional<PublicationRecord>();
}

absl::StatusOr<std::vector<PublicationRecord>> FakeRepository::ListPublications(
    const PublicationQuery& q) {
  std::vector<PublicationRecord> out;
  for (auto it = publications_.rbegin(); it != publications_.rend(); ++it) {
    const PublicationRecord& p = *it;
    bool visible = p.visibility == v1::PUBLIC || p.publisher == q.viewer ||
                   std::count(p.shared_with.begin(), p.shared_with.end(), q.viewer) > 0;
    if (!visible) continue;
    if (!q.lineage.empty() && p.lineage != q.lineage) continue;
    if (!q.publisher.empty() && p.publisher != q.publisher) continue;
    if (!q.multi_cloud_image.empty() && p.multi_cloud_image != q.multi_cloud_image) continue;
    if (p.revision <= q.min_revision_exclusive) continue;
    if (q.before_seq != 0 && p.seq >= q.before_seq) continue;
    out.push_back(p);
    if (static_cast<int>(out.size()) == q.limit) break;
  }
  return out;
}

absl::StatusOr<PublicationRecord> FakeRepository::UpdateSharing(
    const std::string& id, v1::Visibility visibility, const std::vector<std::string>& accounts,
    int64_t expected_version) {
  for (auto& p : publications_) {
    if (p.id != id) continue;
    if (expected_version > 0 && expected_version != p.version) {
      return absl::AbortedError("etag mismatch");
    }
    p.visibility = visibility;
    p.shared_with = accounts;
    ++p.version;
    return p;
  }
  return absl::NotFoundError("no publication");
}

absl::StatusOr<ImportRecord> FakeRepository::BeginImport(const std::string& account,
                                                         const std::string& publication_id) {
  auto [it, _] = imports_.emplace(std::make_pair(account, publication_id),
                                  ImportRecord{account, publication_id, "", 1});
  return it->second;
}

absl::Status FakeRepository::FinishImport(const std::string& account,
                                          const std::string& publication_id,
                                          const std::string& multi_cloud_image) {
  auto& record = imports_[{account, publication_id}];
  record.account = account;
  record.publication_id = publication_id;
  if (record.attempt == 0) record.attempt = 1;
  record.multi_cloud_image = multi_cloud_image;
  return absl::OkStatus();
}

absl::StatusOr<ImportRecord> FakeRepository::RestartImport(const std::string& account,
                                                           const std::string& publication_id) {
  auto it = imports_.find({account, publication_id});
  if (it == imports_.end()) return absl::NotFoundError("no import");
  it->second.multi_cloud_image.clear();
  ++it->second.attempt;
  return it->second;
}

absl::StatusOr<UsageRecord> FakeRepository::GetUsage(const std::string& publication_id) {
  UsageRecord out;
  std::vector<std::string> roots;
  for (const auto& [key, record] : imports_) {
    if (key.second != publication_id || record.multi_cloud_image.empty()) continue;
    if (std::find(out.importing_accounts.begin(), out.importing_accounts.end(), key.first) ==
        out.importing_accounts.end()) {
      out.importing_accounts.push_back(key.first);
    }
    roots.push_back(record.multi_cloud_image);
    auto l = lineage.find(record.multi_cloud_image);
    if (l == lineage.end() || !l->second.deleted) ++out.import_count;
  }
  // Breadth-first over clones whose source's HEAD is a root or a found clone.
  for (size_t i = 0; i < roots.size(); ++i) {
    for (const auto& [name, e] : lineage) {
      if (e.origin_kind != "CLONED") continue;
      std::string source = e.origin_source.substr(0, e.origin_source.find('@'));
      if (source != roots[i] || std::count(roots.begin(), roots.end(), name) > 0) continue;
      roots.push_back(name);
      if (!e.deleted) out.clones.push_back(name);
    }
  }
  std::sort(out.clones.begin(), out.clones.end());
  return out;
}

absl::Status FakeRepository::ApplyLineageEvent(const LineageEvent& event) {
  auto it = lineage.find(event.multi_cloud_image);
  if (it != lineage.end() && it->second.sequence >= event.sequence) return absl::OkStatus();
  lineage[event.multi_cloud_image] = event;
  return absl::OkStatus();
}

absl::StatusOr<catalog::v1::MultiCloudImage> FakeCatalog::GetMultiCloudImage(
    const std::string& token, const std::string& name) {
  auto it = mcis.find(name);
  if (it == mcis.end() || !absl::StartsWith(name, absl::StrCat("accounts/", token, "/"))) {
    return absl::NotFoundError(absl::StrCat("MultiCloud Image ", name, " not found."));
  }
  return it->second;
}

absl::StatusOr<std::vector<catalog::v1::Image>> FakeCatalog::ListImages(const std::string& token,
                                                                        const std::string& parent) {
  std::vector<catalog::v1::Image> out;
  for (const auto& image : images) {
    bool visible = image.visibility() == catalog::v1::PUBLIC ||
                   image.owner() == absl::StrCat("accounts/", token);
    if (visible && absl::StartsWith(image.name(), absl::StrCat(parent, "/"))) {
      out.push_back(image);
    }
  }
  return out;
}

absl::StatusOr<catalog::v1::MultiCloudImage> FakeCatalog::ImportMultiCloudImage(
    const std::string& token, const catalog::v1::ImportMultiCloudImageRequest& request) {
  import_calls.push_back(request);
  if (request.parent() != absl::StrCat("accounts/", token)) {
    return absl::PermissionDeniedError("wrong account");
  }
  if (auto it = request_ids.find(request.request_id()); it != request_ids.end()) {
    return mcis.at(it->second);
  }
  std::string head = request.name();
  if (head.empty()) head = absl::StrCat(request.parent(), "/multiCloudImages/import-", next_id++);
  catalog::v1::MultiCloudImage mci = request.snapshot();
  int64_t revision = request.snapshot().origin().source_revision();
  mci.set_name(head);
  mci.set_revision(0);
  mci.set_latest_revision(revision);
  mci.set_read_only(true);
  for (auto& s : *mci.mutable_settings()) {
    s.set_name(absl::StrCat(head, "/settings/", s.cloud().substr(s.cloud().rfind('/') + 1)));
  }
  mcis[head] = mci;
  catalog::v1::MultiCloudImage committed = mci;
  committed.set_name(absl::StrCat(head, "@", revision));
  committed.set_revision(revision);
  mcis[committed.name()] = committed;
  request_ids[request.request_id()] = head;
  return mci;
}

}  // namespace mci::marketplace::testing
