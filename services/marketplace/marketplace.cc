#include "services/marketplace/marketplace.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/log.h"
#include "services/marketplace/names.h"
#include "services/marketplace/snapshot.h"

namespace mci::marketplace {
namespace {

using catalog::v1::MultiCloudImage;
using catalog::v1::Origin;

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 100;
// An update list is short: the newer revisions of one MCI.
constexpr int kMaxUpdates = 100;
// How far ListAvailableUpdates follows a clone back to the import it descends from.
constexpr int kMaxCloneHops = 16;
constexpr size_t kMaxRequestId = 128;

absl::Status NotFound(absl::string_view what) {
  return absl::NotFoundError(absl::StrCat(what, " not found."));
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

// The accounts a publication is shown to, validated: sorted, without duplicates or the
// publisher's own account.
absl::StatusOr<std::vector<std::string>> ValidateAudience(
    const auth::Caller& caller, v1::Visibility visibility,
    const google::protobuf::RepeatedPtrField<std::string>& shared_with) {
  switch (visibility) {
    case v1::PUBLIC:
      if (!shared_with.empty()) {
        return absl::InvalidArgumentError(
            "shared_with must be empty when visibility is PUBLIC (every account sees it); "
            "use visibility SHARED to share with named accounts only.");
      }
      return std::vector<std::string>();
    case v1::SHARED: {
      std::set<std::string> accounts;
      for (const std::string& name : shared_with) {
        auto account = ParseAccountName(name, "shared_with");
        if (!account.ok()) return account.status();
        if (*account != caller.account) accounts.insert(*account);
      }
      if (accounts.empty()) {
        return absl::InvalidArgumentError(
            "visibility SHARED needs at least one other account in shared_with "
            "(accounts/{account}).");
      }
      return std::vector<std::string>(accounts.begin(), accounts.end());
    }
    default:
      return absl::InvalidArgumentError(
          "visibility is required: PUBLIC, or SHARED with the accounts in "
          "shared_with.");
  }
}

absl::StatusOr<int64_t> ParseEtag(const std::string& etag) {
  if (etag.empty()) return 0;
  int64_t version = 0;
  if (!absl::SimpleAtoi(etag, &version) || version <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("etag \"", etag,
                     "\" is not one this service issued; pass the etag of the publication "
                     "as read, or none."));
  }
  return version;
}

std::string HeadOf(const std::string& name) {
  auto parsed = ParseMultiCloudImageName(name, "name");
  return parsed.ok() ? parsed->Head() : name;
}

// The caller's own MCI (HEAD or @N) by name; another account's is NOT_FOUND, as the catalog
// would answer.
absl::StatusOr<MultiCloudImageName> OwnMultiCloudImage(const auth::Caller& caller,
                                                       const std::string& name,
                                                       absl::string_view field) {
  auto parsed = ParseMultiCloudImageName(name, field);
  if (!parsed.ok()) return parsed.status();
  if (parsed->account != caller.account) {
    return NotFound(absl::StrCat("MultiCloud Image ", name));
  }
  return parsed;
}

}  // namespace

bool CanSee(const auth::Caller& caller, const PublicationRecord& record) {
  if (record.visibility == v1::PUBLIC) return true;
  if (caller.account.empty()) return false;
  if (record.publisher == caller.account) return true;
  return std::binary_search(record.shared_with.begin(), record.shared_with.end(), caller.account);
}

v1::Publication ToProto(const PublicationRecord& record, const auth::Caller& caller) {
  v1::Publication out;
  out.set_name(PublicationName(record.id));
  out.set_multi_cloud_image(record.revision > 0
                                ? absl::StrCat(record.multi_cloud_image, "@", record.revision)
                                : record.multi_cloud_image);
  out.set_revision(record.revision);
  out.set_publisher(AccountName(record.publisher));
  out.set_lineage(record.lineage);
  out.set_visibility(record.visibility);
  if (record.publisher == caller.account) {
    for (const auto& account : record.shared_with) out.add_shared_with(AccountName(account));
  }
  *out.mutable_snapshot() = record.snapshot;
  out.set_display_name(record.snapshot.display_name());
  out.set_description(record.snapshot.description());
  *out.mutable_create_time() = ToTimestamp(record.create_time);
  *out.mutable_update_time() = ToTimestamp(record.update_time);
  out.set_etag(absl::StrCat(record.version));
  return out;
}

absl::StatusOr<PublicationRecord> Marketplace::LoadVisible(const auth::Caller& caller,
                                                           const std::string& name,
                                                           absl::string_view field) {
  auto id = ParsePublicationName(name, field);
  if (!id.ok()) return id.status();
  auto record = repository_->GetPublication(*id);
  if (!record.ok()) {
    if (absl::IsNotFound(record.status())) return NotFound(absl::StrCat("Publication ", name));
    return record.status();
  }
  if (!CanSee(caller, *record)) return NotFound(absl::StrCat("Publication ", name));
  return record;
}

absl::StatusOr<std::vector<catalog::v1::Finding>> Marketplace::ImageWarnings(
    const auth::Caller& caller, const MultiCloudImage& snapshot, v1::Visibility visibility,
    const std::vector<std::string>& accounts) {
  std::set<std::string> clouds;
  for (const auto& setting : snapshot.settings()) clouds.insert(setting.cloud());
  std::map<std::string, catalog::v1::Image> images;
  for (const std::string& cloud : clouds) {
    auto listed = catalog_->ListImages(caller.token, cloud);
    if (!listed.ok()) return listed.status();
    for (auto& image : *listed) images[image.name()] = std::move(image);
  }
  std::vector<std::string> targets;
  targets.reserve(accounts.size());
  for (const auto& account : accounts) targets.push_back(AccountName(account));
  return PrivateImageWarnings(snapshot, caller.AccountName(), visibility, targets, images);
}

absl::Status Marketplace::PublishMultiCloudImage(const auth::Caller& caller,
                                                 const v1::PublishMultiCloudImageRequest& request,
                                                 v1::PublishMultiCloudImageResponse* response) {
  auto source = ParseMultiCloudImageName(request.multi_cloud_image(), "multi_cloud_image");
  if (!source.ok()) return source.status();
  if (source->revision == 0 && !request.allow_head()) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.multi_cloud_image(),
        " is HEAD, not a committed revision. Publish a committed revision (name@N; commit HEAD "
        "first if needed), or set allow_head to publish HEAD as it is now."));
  }
  auto accounts = ValidateAudience(caller, request.visibility(), request.shared_with());
  if (!accounts.ok()) return accounts.status();
  if (!request.publication_id().empty()) {
    if (auto s = ValidatePublicationId(request.publication_id()); !s.ok()) return s;
  }
  if (request.request_id().size() > kMaxRequestId) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is longer than ", kMaxRequestId, " characters."));
  }
  if (source->account != caller.account) {
    return NotFound(absl::StrCat("MultiCloud Image ", request.multi_cloud_image()));
  }

  std::optional<PublicationRecord> existing;
  if (!request.request_id().empty()) {
    auto found = repository_->FindByRequestId(caller.account, request.request_id());
    if (!found.ok()) return found.status();
    existing = std::move(*found);
  }
  if (!existing) {
    if (source->revision > 0) {
      auto found = repository_->FindByRevision(source->Head(), source->revision);
      if (!found.ok()) return found.status();
      if (*found) {
        return absl::AlreadyExistsError(absl::StrCat(
            "Revision ", source->revision, " of ", source->Head(), " is already published as ",
            PublicationName((*found)->id),
            "; a revision is published once. Commit a new revision and publish that, or change "
            "who sees the publication with UpdatePublicationSharing."));
      }
    }
    auto mci = catalog_->GetMultiCloudImage(caller.token, source->Full());
    if (!mci.ok()) return mci.status();
    if (mci->origin().kind() == Origin::IMPORTED) {
      return absl::FailedPreconditionError(absl::StrCat(
          source->Head(), " was imported from the marketplace (", mci->origin().source(),
          "); only MCIs created or cloned in your account can be published. Clone it, then "
          "commit and publish the clone."));
    }
    if (mci->state() == MultiCloudImage::DELETING) {
      return absl::FailedPreconditionError(
          absl::StrCat(source->Head(), " is being deleted; it cannot be published."));
    }
    PublicationRecord record;
    record.id = request.publication_id().empty() ? NewPublicationId() : request.publication_id();
    record.publisher = caller.account;
    record.multi_cloud_image = source->Head();
    record.revision = source->revision;
    record.lineage = mci->origin().lineage().empty() ? source->Head() : mci->origin().lineage();
    record.visibility = request.visibility();
    record.shared_with = *accounts;
    record.snapshot = std::move(*mci);
    absl::Status inserted = repository_->InsertPublication(record, request.request_id());
    if (absl::IsAlreadyExists(inserted) && !request.request_id().empty()) {
      // A concurrent retry of this very request won the race: answer with its result.
      auto found = repository_->FindByRequestId(caller.account, request.request_id());
      if (!found.ok()) return found.status();
      if (!*found) return inserted;
      existing = std::move(*found);
    } else if (!inserted.ok()) {
      return inserted;
    } else {
      auto stored = repository_->GetPublication(record.id);
      if (!stored.ok()) return stored.status();
      existing = std::move(*stored);
      log::Info("published", {{"publication", PublicationName(record.id)},
                              {"multi_cloud_image", source->Full()},
                              {"account", caller.account}});
    }
  }

  auto warnings =
      ImageWarnings(caller, existing->snapshot, existing->visibility, existing->shared_with);
  if (!warnings.ok()) return warnings.status();
  if (existing->revision == 0) {
    catalog::v1::Finding head;
    head.set_severity(catalog::v1::Finding::WARNING);
    head.set_code("HEAD_PUBLISHED");
    head.set_message(absl::StrCat(
        "HEAD of ", existing->multi_cloud_image,
        " was published as it is now; HEAD is not a committed revision, so importers cannot tell "
        "this snapshot from later edits. Publish committed revisions unless you are testing "
        "across accounts."));
    response->add_warnings()->Swap(&head);
  }
  for (auto& w : *warnings) response->add_warnings()->Swap(&w);
  *response->mutable_publication() = ToProto(*existing, caller);
  return absl::OkStatus();
}

absl::Status Marketplace::GetPublication(const auth::Caller& caller,
                                         const v1::GetPublicationRequest& request,
                                         v1::Publication* response) {
  auto record = LoadVisible(caller, request.name(), "name");
  if (!record.ok()) return record.status();
  *response = ToProto(*record, caller);
  return absl::OkStatus();
}

absl::Status Marketplace::ListPublications(const auth::Caller& caller,
                                           const v1::ListPublicationsRequest& request,
                                           v1::ListPublicationsResponse* response) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError("page_size must not be negative (0 means the default, 50).");
  }
  int page_size =
      request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  PublicationQuery query;
  query.viewer = caller.account;
  if (!request.lineage().empty()) {
    auto lineage = ParseMultiCloudImageName(request.lineage(), "lineage");
    if (!lineage.ok()) return lineage.status();
    query.lineage = lineage->Head();
  }
  if (!request.publisher().empty()) {
    auto publisher = ParseAccountName(request.publisher(), "publisher");
    if (!publisher.ok()) return publisher.status();
    query.publisher = *publisher;
  }
  if (!request.multi_cloud_image().empty()) {
    auto mci = ParseMultiCloudImageName(request.multi_cloud_image(), "multi_cloud_image");
    if (!mci.ok()) return mci.status();
    query.multi_cloud_image = mci->Head();
  }
  std::string filters =
      absl::StrCat(query.lineage, "\n", query.publisher, "\n", query.multi_cloud_image);
  auto before = DecodePageToken(request.page_token(), filters);
  if (!before.ok()) return before.status();
  query.before_seq = *before;
  query.limit = page_size + 1;
  auto records = repository_->ListPublications(query);
  if (!records.ok()) return records.status();
  bool more = static_cast<int>(records->size()) > page_size;
  if (more) records->resize(page_size);
  for (const auto& record : *records) *response->add_publications() = ToProto(record, caller);
  if (more) response->set_next_page_token(EncodePageToken(records->back().seq, filters));
  return absl::OkStatus();
}

absl::Status Marketplace::UpdatePublicationSharing(
    const auth::Caller& caller, const v1::UpdatePublicationSharingRequest& request,
    v1::UpdatePublicationSharingResponse* response) {
  auto record = LoadVisible(caller, request.name(), "name");
  if (!record.ok()) return record.status();
  if (record->publisher != caller.account) {
    return absl::PermissionDeniedError(absl::StrCat("Only the publisher (",
                                                    AccountName(record->publisher),
                                                    ") can change who sees ", request.name(), "."));
  }
  auto accounts = ValidateAudience(caller, request.visibility(), request.shared_with());
  if (!accounts.ok()) return accounts.status();
  auto version = ParseEtag(request.etag());
  if (!version.ok()) return version.status();
  auto updated = repository_->UpdateSharing(record->id, request.visibility(), *accounts, *version);
  if (!updated.ok()) return updated.status();
  auto warnings =
      ImageWarnings(caller, updated->snapshot, updated->visibility, updated->shared_with);
  if (!warnings.ok()) return warnings.status();
  for (auto& w : *warnings) response->add_warnings()->Swap(&w);
  *response->mutable_publication() = ToProto(*updated, caller);
  return absl::OkStatus();
}

absl::Status Marketplace::ImportPublication(const auth::Caller& caller,
                                            const v1::ImportPublicationRequest& request,
                                            MultiCloudImage* response) {
  if (!request.parent().empty()) {
    auto account = ParseAccountName(request.parent(), "parent");
    if (!account.ok()) return account.status();
    if (*account != caller.account) {
      return absl::PermissionDeniedError(
          absl::StrCat("You can import only into your own account (", caller.AccountName(), ")."));
    }
  }
  auto publication = LoadVisible(caller, request.name(), "name");
  if (!publication.ok()) return publication.status();
  auto record = repository_->BeginImport(caller.account, publication->id);
  if (!record.ok()) return record.status();
  if (!record->multi_cloud_image.empty()) {
    auto first = catalog_->GetMultiCloudImage(caller.token, record->multi_cloud_image);
    if (first.ok()) {
      *response = std::move(*first);
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(first.status())) return first.status();
    // The first import was deleted since: import afresh.
    record = repository_->RestartImport(caller.account, publication->id);
    if (!record.ok()) return record.status();
  }
  catalog::v1::ImportMultiCloudImageRequest import;
  import.set_parent(caller.AccountName());
  *import.mutable_snapshot() = ImportSnapshot(ToProto(*publication, caller));
  // The same for every attempt at this import, so that the catalog answers a retry (or a
  // concurrent duplicate) with the MCI it created first.
  import.set_request_id(absl::StrCat("marketplace-import-", publication->id, "-", caller.account,
                                     "-", record->attempt));
  auto imported = catalog_->ImportMultiCloudImage(caller.token, import);
  if (!imported.ok()) return imported.status();
  if (auto s = repository_->FinishImport(caller.account, publication->id, HeadOf(imported->name()));
      !s.ok()) {
    return s;
  }
  log::Info("imported", {{"publication", PublicationName(publication->id)},
                         {"multi_cloud_image", imported->name()},
                         {"account", caller.account}});
  *response = std::move(*imported);
  return absl::OkStatus();
}

absl::StatusOr<Marketplace::ImportOrigin> Marketplace::FindImportOrigin(const auth::Caller& caller,
                                                                        const std::string& name) {
  auto own = OwnMultiCloudImage(caller, name, "multi_cloud_image");
  if (!own.ok()) return own.status();
  std::string current = own->Full();
  for (int hop = 0; hop < kMaxCloneHops; ++hop) {
    auto mci = catalog_->GetMultiCloudImage(caller.token, current);
    if (!mci.ok()) return mci.status();
    const Origin& origin = mci->origin();
    if (origin.kind() == Origin::IMPORTED) {
      const std::string& publication =
          origin.publication().empty() ? origin.source() : origin.publication();
      auto id = ParsePublicationName(publication, "origin.publication");
      if (!id.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            current, " names no publication it was imported from (origin ", publication, ")."));
      }
      auto record = repository_->GetPublication(*id);
      if (!record.ok()) return record.status();
      return ImportOrigin{std::move(*record), std::move(*mci)};
    }
    // A clone of an import (in the same account) follows the import's updates.
    if (origin.kind() == Origin::CLONED && !origin.publication().empty()) {
      auto id = ParsePublicationName(origin.publication(), "origin.publication");
      if (id.ok()) {
        auto record = repository_->GetPublication(*id);
        if (!record.ok()) return record.status();
        return ImportOrigin{std::move(*record), std::move(*mci)};
      }
    }
    auto source = ParseMultiCloudImageName(origin.source(), "origin.source");
    if (origin.kind() != Origin::CLONED || !source.ok() || source->account != caller.account) {
      break;
    }
    current = source->Full();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      name,
      " was not imported from the marketplace (nor cloned from an import), so it has no "
      "published updates."));
}

absl::Status Marketplace::ListAvailableUpdates(const auth::Caller& caller,
                                               const v1::ListAvailableUpdatesRequest& request,
                                               v1::ListAvailableUpdatesResponse* response) {
  auto origin = FindImportOrigin(caller, request.multi_cloud_image());
  if (!origin.ok()) return origin.status();
  PublicationQuery query;
  query.viewer = caller.account;
  query.multi_cloud_image = origin->publication.multi_cloud_image;
  query.min_revision_exclusive = origin->publication.revision;
  query.limit = kMaxUpdates;
  auto records = repository_->ListPublications(query);
  if (!records.ok()) return records.status();
  response->set_current_publication(PublicationName(origin->publication.id));
  response->set_current_revision(origin->publication.revision);
  for (const auto& record : *records) *response->add_publications() = ToProto(record, caller);
  return absl::OkStatus();
}

absl::Status Marketplace::ComparePublication(const auth::Caller& caller,
                                             const v1::ComparePublicationRequest& request,
                                             v1::ComparePublicationResponse* response) {
  if (request.multi_cloud_image().empty() == request.base_publication().empty()) {
    return absl::InvalidArgumentError(
        "Set exactly one of multi_cloud_image (your MCI, typically the import) or "
        "base_publication to compare the publication against.");
  }
  auto target = LoadVisible(caller, request.name(), "name");
  if (!target.ok()) return target.status();
  MultiCloudImage base;
  std::string base_name;
  int64_t base_revision = 0;
  if (!request.multi_cloud_image().empty()) {
    auto own = OwnMultiCloudImage(caller, request.multi_cloud_image(), "multi_cloud_image");
    if (!own.ok()) return own.status();
    auto mci = catalog_->GetMultiCloudImage(caller.token, own->Full());
    if (!mci.ok()) return mci.status();
    base_name = own->Full();
    base_revision = own->revision > 0                          ? own->revision
                    : mci->origin().kind() == Origin::IMPORTED ? mci->origin().source_revision()
                                                               : mci->latest_revision();
    base = std::move(*mci);
  } else {
    auto other = LoadVisible(caller, request.base_publication(), "base_publication");
    if (!other.ok()) return other.status();
    base_name = PublicationName(other->id);
    base_revision = other->revision;
    base = std::move(other->snapshot);
  }
  *response = CompareSnapshots(base, target->snapshot);
  response->set_base(base_name);
  response->set_base_revision(base_revision);
  response->set_target(PublicationName(target->id));
  response->set_target_revision(target->revision);
  return absl::OkStatus();
}

absl::Status Marketplace::UpdateImportedMultiCloudImage(
    const auth::Caller& caller, const v1::UpdateImportedMultiCloudImageRequest& request,
    MultiCloudImage* response) {
  if (auto s = auth::Require(caller, auth::Role::kDesigner); !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "Updating an imported MultiCloud Image needs the designer and library roles in account ",
        caller.account, "."));
  }
  auto own = OwnMultiCloudImage(caller, request.multi_cloud_image(), "multi_cloud_image");
  if (!own.ok()) return own.status();
  if (own->revision != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("multi_cloud_image must be the HEAD name of the imported MCI (", own->Head(),
                     "); committed revisions never change."));
  }
  auto mci = catalog_->GetMultiCloudImage(caller.token, own->Head());
  if (!mci.ok()) return mci.status();
  if (mci->origin().kind() != Origin::IMPORTED) {
    return absl::FailedPreconditionError(
        absl::StrCat(own->Head(),
                     " is not an imported MCI; only imports are updated from the marketplace. "
                     "To follow an update in a clone, update the import and clone it again."));
  }
  auto origin = FindImportOrigin(caller, own->Head());
  if (!origin.ok()) return origin.status();
  const PublicationRecord& current = origin->publication;

  std::optional<PublicationRecord> target;
  if (!request.publication().empty()) {
    auto chosen = LoadVisible(caller, request.publication(), "publication");
    if (!chosen.ok()) return chosen.status();
    if (chosen->id == current.id) {
      // Already brought in (e.g. a retry after success).
      *response = std::move(*mci);
      return absl::OkStatus();
    }
    if (chosen->multi_cloud_image != current.multi_cloud_image) {
      return absl::FailedPreconditionError(
          absl::StrCat(request.publication(), " publishes ", chosen->multi_cloud_image, ", not ",
                       current.multi_cloud_image, " which ", own->Head(), " was imported from."));
    }
    if (chosen->revision <= current.revision) {
      return absl::FailedPreconditionError(
          absl::StrCat(request.publication(), " (revision ", chosen->revision,
                       ") is not newer than revision ", current.revision, " that ", own->Head(),
                       " holds; pick a newer one from "
                       "ListAvailableUpdates."));
    }
    target = std::move(*chosen);
  } else {
    PublicationQuery query;
    query.viewer = caller.account;
    query.multi_cloud_image = current.multi_cloud_image;
    query.min_revision_exclusive = current.revision;
    query.limit = kMaxUpdates;
    auto records = repository_->ListPublications(query);
    if (!records.ok()) return records.status();
    if (records->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(own->Head(), " is up to date: no publication of ", current.multi_cloud_image,
                       " newer than revision ", current.revision, " is available to you."));
    }
    // Newest first by publication; bring in the highest revision.
    target = *std::max_element(records->begin(), records->end(),
                               [](const PublicationRecord& a, const PublicationRecord& b) {
                                 return a.revision < b.revision;
                               });
  }

  catalog::v1::ImportMultiCloudImageRequest update;
  update.set_parent(caller.AccountName());
  update.set_name(own->Head());
  *update.mutable_snapshot() = ImportSnapshot(ToProto(*target, caller));
  update.set_request_id(
      absl::StrCat("marketplace-update-", own->account, "-", own->id, "-", target->id));
  auto updated = catalog_->ImportMultiCloudImage(caller.token, update);
  if (!updated.ok()) return updated.status();
  if (auto s = repository_->FinishImport(caller.account, target->id, own->Head()); !s.ok()) {
    return s;
  }
  log::Info("updated import", {{"publication", PublicationName(target->id)},
                               {"multi_cloud_image", own->Head()},
                               {"account", caller.account}});
  *response = std::move(*updated);
  return absl::OkStatus();
}

absl::Status Marketplace::GetPublicationUsage(const auth::Caller& caller,
                                              const v1::GetPublicationUsageRequest& request,
                                              v1::PublicationUsage* response) {
  auto record = LoadVisible(caller, request.name(), "name");
  if (!record.ok()) return record.status();
  auto usage = repository_->GetUsage(record->id);
  if (!usage.ok()) return usage.status();
  response->set_name(PublicationName(record->id));
  response->set_importing_account_count(static_cast<int32_t>(usage->importing_accounts.size()));
  response->set_import_count(usage->import_count);
  response->set_clone_count(static_cast<int32_t>(usage->clones.size()));
  // Who uses it is the publisher's business only.
  if (record->publisher == caller.account) {
    for (const auto& account : usage->importing_accounts) {
      response->add_importing_accounts(AccountName(account));
    }
    for (const auto& clone : usage->clones) response->add_clones(clone);
  }
  return absl::OkStatus();
}

}  // namespace mci::marketplace
