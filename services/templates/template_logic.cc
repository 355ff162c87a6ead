#include "services/templates/template_logic.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/common/log.h"
#include "libs/common/metrics.h"
#include "services/templates/names.h"

namespace mci::templates {
namespace {

namespace catalog = mci::catalog::v1;
using google::protobuf::util::TimeUtil;

constexpr size_t kMaxDisplayName = 255;
constexpr size_t kMaxDescription = 4096;
constexpr size_t kMaxRequestId = 128;

absl::Status TemplateNotFound(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("ServerTemplate ", name, " was not found."));
}

absl::Status MciNotFound(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("MultiCloud Image ", name, " was not found."));
}

absl::Status BeingDeleted(absl::string_view mci) {
  return absl::FailedPreconditionError(absl::StrCat(
      "MultiCloud Image ", mci, " is being deleted; it cannot be referenced by a ServerTemplate."));
}

absl::Status ValidateDisplayName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "server_template.display_name is required: give the ServerTemplate a nickname.");
  }
  if (name.size() > kMaxDisplayName) {
    return absl::InvalidArgumentError(absl::StrCat("server_template.display_name is ", name.size(),
                                                   " bytes long; at most ", kMaxDisplayName,
                                                   " are allowed."));
  }
  return absl::OkStatus();
}

absl::Status ValidateDescription(absl::string_view description) {
  if (description.size() > kMaxDescription) {
    return absl::InvalidArgumentError(absl::StrCat("server_template.description is ",
                                                   description.size(), " bytes long; at most ",
                                                   kMaxDescription, " are allowed."));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestId(absl::string_view request_id) {
  if (request_id.size() > kMaxRequestId) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is longer than ", kMaxRequestId, " characters; use a UUID."));
  }
  return absl::OkStatus();
}

// The MCI reference `name` of the caller's account, as stored (HEAD name + revision).
absl::StatusOr<Reference> ParseReference(const auth::Caller& caller, absl::string_view name,
                                         absl::string_view field) {
  auto parsed = ParseMultiCloudImageName(name, field);
  if (!parsed.ok()) return parsed.status();
  if (!auth::OwnsAccount(caller, parsed->account)) return MciNotFound(name);
  Reference ref;
  ref.mci = parsed->Head();
  ref.mci_revision = parsed->revision;
  return ref;
}

std::vector<std::string> MciNames(const std::vector<Reference>& refs) {
  std::set<std::string> names;
  for (const auto& r : refs) names.insert(r.mci);
  return {names.begin(), names.end()};
}

void FillUsage(const Usage& u, v1::MultiCloudImageUsage* out) {
  out->set_server_template(TemplateResourceName(u.account, u.template_id, u.template_revision));
  out->set_multi_cloud_image(MultiCloudImageResourceName(u.mci, u.mci_revision));
  out->set_is_default(u.is_default);
}

}  // namespace

std::vector<std::string> CoveredClouds(const std::vector<Reference>& refs,
                                       const std::map<std::string, ReplicaRecord>& replicas) {
  std::set<std::string> clouds;
  for (const auto& r : refs) {
    auto it = replicas.find(r.mci);
    if (it == replicas.end()) continue;
    if (const auto* c = it->second.Clouds(r.mci_revision)) clouds.insert(c->begin(), c->end());
  }
  return {clouds.begin(), clouds.end()};
}

std::vector<Reference> LaunchOrder(std::vector<Reference> refs) {
  std::stable_sort(refs.begin(), refs.end(), [](const Reference& a, const Reference& b) {
    if (a.is_default != b.is_default) return a.is_default;
    return a.position < b.position;
  });
  return refs;
}

ServerTemplateLogic::ServerTemplateLogic(Repository* repository, CatalogClient* catalog,
                                         LogicOptions options)
    : repository_(repository),
      catalog_(catalog),
      options_(std::move(options)),
      launch_cache_(options_.launch_cache_ttl) {
  Metrics::Global().DeclareCounters(
      {"mci_launch_cache_misses_total", "mci_launch_cache_refreshed_total"});
}

absl::StatusOr<TemplateName> ServerTemplateLogic::ParseOwned(const auth::Caller& caller,
                                                             absl::string_view name,
                                                             absl::string_view field,
                                                             bool head_only) const {
  auto parsed = ParseTemplateName(name, field);
  if (!parsed.ok()) return parsed.status();
  if (head_only && parsed->revision != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " \"", name, "\" names committed revision ", parsed->revision,
                     ", which cannot be changed; use the template HEAD ", parsed->Head(), "."));
  }
  if (!auth::OwnsAccount(caller, parsed->account)) return TemplateNotFound(name);
  return parsed;
}

absl::StatusOr<TemplateRecord> ServerTemplateLogic::Load(const auth::Caller& caller,
                                                         absl::string_view name,
                                                         absl::string_view field, bool head_only) {
  auto parsed = ParseOwned(caller, name, field, head_only);
  if (!parsed.ok()) return parsed.status();
  return repository_->GetTemplate(parsed->account, parsed->template_id, parsed->revision);
}

absl::Status ServerTemplateLogic::Fill(const TemplateRecord& t, v1::ServerTemplate* out) {
  auto replicas = repository_->GetReplicas(MciNames(t.references));
  if (!replicas.ok()) return replicas.status();
  out->Clear();
  out->set_name(TemplateResourceName(t.account, t.template_id, t.revision));
  out->set_display_name(t.display_name);
  out->set_description(t.description);
  out->set_revision(t.revision);
  out->set_latest_revision(t.latest_revision);
  out->set_commit_message(t.commit_message);
  out->set_cloned_from(t.cloned_from);
  if (t.revision == 0) out->set_etag(Etag(t.version));
  *out->mutable_create_time() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t.create_time));
  *out->mutable_update_time() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t.update_time));
  for (const auto& r : t.references) {
    auto* ref = out->add_multi_cloud_images();
    ref->set_multi_cloud_image(MultiCloudImageResourceName(r.mci, r.mci_revision));
    ref->set_is_default(r.is_default);
    auto it = replicas->find(r.mci);
    if (it == replicas->end()) continue;
    if (const auto* clouds = it->second.Clouds(r.mci_revision)) {
      for (const auto& c : *clouds) ref->add_clouds(c);
    }
  }
  return absl::OkStatus();
}

absl::Status ServerTemplateLogic::CreateServerTemplate(
    const auth::Caller& caller, const v1::CreateServerTemplateRequest& request,
    v1::ServerTemplate* response) {
  auto account = ParseAccountName(request.parent(), "parent");
  if (!account.ok()) return account.status();
  if (!auth::OwnsAccount(caller, *account)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "ServerTemplates can only be created in your own account, ", caller.AccountName(), "."));
  }
  const v1::ServerTemplate& t = request.server_template();
  if (absl::Status s = ValidateDisplayName(t.display_name()); !s.ok()) return s;
  if (absl::Status s = ValidateDescription(t.description()); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  if (t.multi_cloud_images_size() > 0) {
    return absl::InvalidArgumentError(
        "server_template.multi_cloud_images must be empty on create; add MultiCloud Images to "
        "the new template with AddMultiCloudImage.");
  }
  Repository::NewTemplate n;
  n.account = *account;
  n.template_id = request.server_template_id();
  if (n.template_id.empty()) {
    n.template_id = GenerateTemplateId();
  } else if (absl::Status s = ValidateTemplateId(n.template_id); !s.ok()) {
    return s;
  }
  n.display_name = t.display_name();
  n.description = t.description();
  n.request_id = request.request_id();
  auto created = repository_->CreateTemplate(n);
  Changed(n.account, n.template_id);
  if (!created.ok()) return created.status();
  return Fill(*created, response);
}

absl::Status ServerTemplateLogic::GetServerTemplate(const auth::Caller& caller,
                                                    const v1::GetServerTemplateRequest& request,
                                                    v1::ServerTemplate* response) {
  auto t = Load(caller, request.name(), "name", /*head_only=*/false);
  if (!t.ok()) return t.status();
  return Fill(*t, response);
}

absl::Status ServerTemplateLogic::ListServerTemplates(const auth::Caller& caller,
                                                      const v1::ListServerTemplatesRequest& request,
                                                      v1::ListServerTemplatesResponse* response) {
  auto account = ParseAccountName(request.parent(), "parent");
  if (!account.ok()) return account.status();
  auto size = PageSize(request.page_size());
  if (!size.ok()) return size.status();
  auto key = DecodePageToken("st", request.page_token(), 1);
  if (!key.ok()) return key.status();
  if (!auth::OwnsAccount(caller, *account)) {
    return absl::NotFoundError(absl::StrCat("Account ", request.parent(), " was not found."));
  }
  auto page = repository_->ListTemplates(*account, (*key)[0], *size + 1);
  if (!page.ok()) return page.status();
  bool more = static_cast<int>(page->size()) > *size;
  if (more) page->pop_back();
  for (const auto& t : *page) {
    if (absl::Status s = Fill(t, response->add_server_templates()); !s.ok()) return s;
  }
  if (more) response->set_next_page_token(EncodePageToken("st", {page->back().row_id}));
  return absl::OkStatus();
}

absl::Status ServerTemplateLogic::UpdateServerTemplate(
    const auth::Caller& caller, const v1::UpdateServerTemplateRequest& request,
    v1::ServerTemplate* response) {
  const v1::ServerTemplate& t = request.server_template();
  auto name = ParseTemplateName(t.name(), "server_template.name");
  if (!name.ok()) return name.status();
  if (name->revision != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("server_template.name \"", t.name(),
                     "\" is a committed revision, which cannot be changed; update the HEAD ",
                     name->Head(), "."));
  }
  if (!auth::OwnsAccount(caller, name->account)) return TemplateNotFound(t.name());
  auto version = ParseEtag(t.etag());
  if (!version.ok()) return version.status();
  Repository::TemplateUpdate update;
  update.expected_version = *version;
  std::vector<std::string> paths(request.update_mask().paths().begin(),
                                 request.update_mask().paths().end());
  if (paths.empty()) paths = {"display_name", "description"};
  for (const auto& path : paths) {
    if (path == "display_name") {
      if (absl::Status s = ValidateDisplayName(t.display_name()); !s.ok()) return s;
      update.display_name = t.display_name();
    } else if (path == "description") {
      if (absl::Status s = ValidateDescription(t.description()); !s.ok()) return s;
      update.description = t.description();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_mask path \"", path,
          "\" cannot be updated; use display_name and/or description (references change with "
          "AddMultiCloudImage, RemoveMultiCloudImage and SetDefaultMultiCloudImage)."));
    }
  }
  auto updated = repository_->UpdateTemplate(name->account, name->template_id, update);
  Changed(name->account, name->template_id);
  if (!updated.ok()) return updated.status();
  return Fill(*updated, response);
}

absl::Status ServerTemplateLogic::DeleteServerTemplate(
    const auth::Caller& caller, const v1::DeleteServerTemplateRequest& request,
    google::protobuf::Empty*) {
  auto name = ParseTemplateName(request.name(), "name");
  if (!name.ok()) return name.status();
  if (name->revision != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name \"", request.name(),
        "\" is a committed revision; revisions are deleted with their template: delete ",
        name->Head(), "."));
  }
  if (!auth::OwnsAccount(caller, name->account)) return TemplateNotFound(request.name());
  auto version = ParseEtag(request.etag());
  if (!version.ok()) return version.status();
  absl::Status deleted = repository_->DeleteTemplate(name->account, name->template_id, *version);
  Changed(name->account, name->template_id);
  return deleted;
}

absl::Status ServerTemplateLogic::CloneServerTemplate(const auth::Caller& caller,
                                                      const v1::CloneServerTemplateRequest& request,
                                                      v1::ServerTemplate* response) {
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  auto source = Load(caller, request.name(), "name", /*head_only=*/false);
  if (!source.ok()) return source.status();
  Repository::NewTemplate n;
  n.account = source->account;
  n.template_id = request.server_template_id();
  if (n.template_id.empty()) {
    n.template_id = GenerateTemplateId();
  } else if (absl::Status s = ValidateTemplateId(n.template_id); !s.ok()) {
    return s;
  }
  n.display_name =
      request.display_name().empty() ? BumpVersion(source->display_name) : request.display_name();
  if (absl::Status s = ValidateDisplayName(n.display_name); !s.ok()) return s;
  n.description = source->description;
  n.cloned_from = TemplateResourceName(source->account, source->template_id, source->revision);
  n.request_id = request.request_id();
  n.references = source->references;
  auto created = repository_->CreateTemplate(n);
  Changed(n.account, n.template_id);
  if (!created.ok()) return created.status();
  return Fill(*created, response);
}

absl::Status ServerTemplateLogic::CommitServerTemplate(
    const auth::Caller& caller, const v1::CommitServerTemplateRequest& request,
    v1::ServerTemplate* response) {
  auto version = ParseEtag(request.etag());
  if (!version.ok()) return version.status();
  auto head = Load(caller, request.name(), "name", /*head_only=*/true);
  if (!head.ok()) return head.status();
  if (*version != 0 && *version != head->version) {
    return absl::AbortedError(
        absl::StrCat("The etag does not match the current ServerTemplate ", request.name(),
                     ": it changed since it was read; read it again and retry with the new etag."));
  }
  std::vector<std::string> heads;
  for (const auto& r : head->references) {
    if (r.mci_revision == 0) heads.push_back(r.mci);
  }
  std::map<std::string, int64_t> pins;
  if (!heads.empty()) {
    if (!request.commit_head_multi_cloud_images()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ServerTemplate ", request.name(), " references the HEAD of MultiCloud Images ",
          absl::StrJoin(heads, ", "),
          "; a committed ServerTemplate pins committed revisions: commit those MultiCloud Images "
          "and reference their revisions, or set commit_head_multi_cloud_images."));
    }
    for (const auto& mci : heads) {
      std::string message = request.message().empty()
                                ? absl::StrCat("Committed with ServerTemplate ", request.name())
                                : request.message();
      auto committed = catalog_->CommitMultiCloudImage(caller.token, mci, message);
      if (!committed.ok()) return committed.status();
      int64_t revision =
          committed->revision() > 0 ? committed->revision() : committed->latest_revision();
      if (revision <= 0) {
        return absl::InternalError(absl::StrCat("The catalog committed ", mci,
                                                " but did not say which revision it made."));
      }
      CatalogState state;
      state.mci = mci;
      state.account = head->account;
      state.display_name = committed->display_name();
      state.revision = revision;
      state.clouds.assign(committed->clouds().begin(), committed->clouds().end());
      auto replicas = repository_->GetReplicas({mci});
      if (!replicas.ok()) return replicas.status();
      std::optional<int64_t> row_version;
      if (auto it = replicas->find(mci); it != replicas->end()) {
        row_version = it->second.row_version;
      }
      if (absl::Status s = repository_->RecordCatalogState(state, row_version); !s.ok()) return s;
      pins[mci] = revision;
    }
  }
  auto committed = repository_->CommitTemplate(head->account, head->template_id, *version,
                                               request.message(), pins);
  Changed(head->account, head->template_id);
  if (!committed.ok()) return committed.status();
  return Fill(*committed, response);
}

absl::Status ServerTemplateLogic::EnsureReplica(const auth::Caller& caller, const std::string& mci,
                                                int64_t revision) {
  auto replicas = repository_->GetReplicas({mci});
  if (!replicas.ok()) return replicas.status();
  const ReplicaRecord* known = nullptr;
  if (auto it = replicas->find(mci); it != replicas->end()) known = &it->second;
  bool head_needed = known == nullptr || known->state != ReplicaState::kActive;
  bool revision_needed = revision > 0 && (head_needed || known->Clouds(revision) == nullptr);
  if (!head_needed && !revision_needed) return absl::OkStatus();
  // A deletion under way is known here for sure, and refused without asking the catalog (which
  // may be down in the middle of that very deletion).
  auto fenced = repository_->DeletionFenced(mci);
  if (!fenced.ok()) return fenced.status();
  if (*fenced) return BeingDeleted(mci);

  std::optional<int64_t> row_version;
  if (known != nullptr) row_version = known->row_version;
  std::string account = ParseMultiCloudImageName(mci, "multi_cloud_image")->account;
  if (head_needed) {
    auto got = catalog_->GetMultiCloudImage(caller.token, mci);
    if (!got.ok()) {
      if (got.status().code() == absl::StatusCode::kNotFound) return MciNotFound(mci);
      return got.status();
    }
    if (got->state() == catalog::MultiCloudImage::DELETING) return BeingDeleted(mci);
    CatalogState state;
    state.mci = mci;
    state.account = account;
    state.display_name = got->display_name();
    state.clouds.assign(got->clouds().begin(), got->clouds().end());
    state.sequence = got->sequence();
    if (absl::Status s = repository_->RecordCatalogState(state, row_version); !s.ok()) return s;
  }
  if (revision_needed) {
    std::string name = MultiCloudImageResourceName(mci, revision);
    auto got = catalog_->GetMultiCloudImage(caller.token, name);
    if (!got.ok()) {
      if (got.status().code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(
            absl::StrCat("MultiCloud Image revision ", name, " was not found."));
      }
      return got.status();
    }
    CatalogState state;
    state.mci = mci;
    state.account = account;
    state.display_name = got->display_name();
    state.revision = revision;
    state.clouds.assign(got->clouds().begin(), got->clouds().end());
    // Only the revision row is written; the HEAD row stays as recorded above.
    if (absl::Status s = repository_->RecordCatalogState(state, int64_t{-1}); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ServerTemplateLogic::AddMultiCloudImage(const auth::Caller& caller,
                                                     const v1::AddMultiCloudImageRequest& request,
                                                     v1::ServerTemplate* response) {
  // Not read first: AddReference answers NOT_FOUND for a template that does not exist.
  auto head = ParseOwned(caller, request.server_template(), "server_template", /*head_only=*/true);
  if (!head.ok()) return head.status();
  auto ref = ParseReference(caller, request.multi_cloud_image(), "multi_cloud_image");
  if (!ref.ok()) return ref.status();
  if (absl::Status s = EnsureReplica(caller, ref->mci, ref->mci_revision); !s.ok()) return s;
  auto updated =
      repository_->AddReference(head->account, head->template_id, *ref, request.make_default());
  Changed(head->account, head->template_id);
  if (!updated.ok()) return updated.status();
  return Fill(*updated, response);
}

absl::Status ServerTemplateLogic::RemoveMultiCloudImage(
    const auth::Caller& caller, const v1::RemoveMultiCloudImageRequest& request,
    v1::ServerTemplate* response) {
  auto name = ParseTemplateName(request.server_template(), "server_template");
  if (!name.ok()) return name.status();
  if (name->revision != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server_template \"", request.server_template(),
        "\" is a committed revision, which cannot be changed; use the HEAD ", name->Head(), "."));
  }
  if (!auth::OwnsAccount(caller, name->account)) {
    return TemplateNotFound(request.server_template());
  }
  auto ref = ParseReference(caller, request.multi_cloud_image(), "multi_cloud_image");
  if (!ref.ok()) return ref.status();
  auto updated = repository_->RemoveReference(name->account, name->template_id, *ref);
  Changed(name->account, name->template_id);
  if (!updated.ok()) return updated.status();
  return Fill(*updated, response);
}

absl::Status ServerTemplateLogic::SetDefaultMultiCloudImage(
    const auth::Caller& caller, const v1::SetDefaultMultiCloudImageRequest& request,
    v1::ServerTemplate* response) {
  auto name = ParseTemplateName(request.server_template(), "server_template");
  if (!name.ok()) return name.status();
  if (name->revision != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server_template \"", request.server_template(),
        "\" is a committed revision, which cannot be changed; use the HEAD ", name->Head(), "."));
  }
  if (!auth::OwnsAccount(caller, name->account)) {
    return TemplateNotFound(request.server_template());
  }
  auto ref = ParseReference(caller, request.multi_cloud_image(), "multi_cloud_image");
  if (!ref.ok()) return ref.status();
  auto updated = repository_->SetDefaultReference(name->account, name->template_id, *ref);
  Changed(name->account, name->template_id);
  if (!updated.ok()) return updated.status();
  return Fill(*updated, response);
}

absl::Status ServerTemplateLogic::ListMultiCloudImageUsages(
    const auth::Caller& caller, const v1::ListMultiCloudImageUsagesRequest& request,
    v1::ListMultiCloudImageUsagesResponse* response) {
  auto ref = ParseReference(caller, request.multi_cloud_image(), "multi_cloud_image");
  if (!ref.ok()) return ref.status();
  auto size = PageSize(request.page_size());
  if (!size.ok()) return size.status();
  auto key = DecodePageToken("xref", request.page_token(), 3);
  if (!key.ok()) return key.status();
  Repository::UsageKey after;
  if (!request.page_token().empty()) after = {(*key)[0], (*key)[1], (*key)[2]};
  std::optional<int64_t> revision;
  if (!request.all_revisions()) revision = ref->mci_revision;
  auto usages = repository_->ListUsages(ref->mci, revision, after, *size + 1);
  if (!usages.ok()) return usages.status();
  bool more = static_cast<int>(usages->size()) > *size;
  if (more) usages->pop_back();
  for (const auto& u : *usages) FillUsage(u, response->add_usages());
  if (more) {
    const Usage& last = usages->back();
    response->set_next_page_token(
        EncodePageToken("xref", {last.template_row_id, last.template_revision, last.mci_revision}));
  }
  return absl::OkStatus();
}

absl::Status ServerTemplateLogic::ListSupportedClouds(const auth::Caller& caller,
                                                      const v1::ListSupportedCloudsRequest& request,
                                                      v1::ListSupportedCloudsResponse* response) {
  auto t = Load(caller, request.name(), "name", /*head_only=*/false);
  if (!t.ok()) return t.status();
  auto replicas = repository_->GetReplicas(MciNames(t->references));
  if (!replicas.ok()) return replicas.status();
  for (const auto& c : CoveredClouds(t->references, *replicas)) response->add_clouds(c);
  return absl::OkStatus();
}

void ServerTemplateLogic::Changed(const std::string& account, const std::string& template_id) {
  launch_cache_.TemplateChanged(account, template_id);
  if (on_template_changed_) on_template_changed_(account, template_id);
}

namespace {

// The catalog's answer as the launch cache keeps it: OK, or the refusals that are answers
// (FAILED_PRECONDITION: no setting for the cloud; NOT_FOUND); nullopt for other failures.
std::optional<LaunchCache::Resolved> ResolvedOf(
    absl::StatusOr<mci::catalog::v1::ResolveImageResponse> answer) {
  LaunchCache::Resolved resolved;
  if (answer.ok()) {
    resolved.response = *std::move(answer);
  } else if (answer.status().code() == absl::StatusCode::kFailedPrecondition ||
             answer.status().code() == absl::StatusCode::kNotFound) {
    resolved.status = answer.status();
  } else {
    return std::nullopt;
  }
  return resolved;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TemplateRecord>> ServerTemplateLogic::LoadForLaunch(
    const auth::Caller& caller, absl::string_view name) {
  auto parsed = ParseOwned(caller, name, "server_template", /*head_only=*/false);
  if (!parsed.ok()) return parsed.status();
  uint64_t generation = 0;
  if (auto hit = launch_cache_.GetTemplate(parsed->account, parsed->template_id, parsed->revision,
                                           &generation)) {
    return hit;
  }
  Metrics::Global().AddCounter("mci_launch_cache_misses_total", 1);
  auto t = repository_->GetTemplate(parsed->account, parsed->template_id, parsed->revision);
  if (!t.ok()) return t.status();
  t->references = LaunchOrder(std::move(t->references));  // cached in launch order
  launch_cache_.PutTemplate(*t, generation);
  return std::make_shared<const TemplateRecord>(*std::move(t));
}

absl::StatusOr<std::shared_ptr<const LaunchCache::Resolved>> ServerTemplateLogic::Resolve(
    const auth::Caller& caller, const Reference& ref, const std::string& cloud) {
  uint64_t generation = 0;
  if (auto hit = launch_cache_.GetResolved(ref.mci, ref.mci_revision, cloud, &generation)) {
    return hit;
  }
  Metrics::Global().AddCounter("mci_launch_cache_misses_total", 1);
  auto answer = catalog_->ResolveImage(
      caller.token, MultiCloudImageResourceName(ref.mci, ref.mci_revision), cloud);
  const absl::Status status = answer.status();
  std::optional<LaunchCache::Resolved> resolved = ResolvedOf(std::move(answer));
  if (!resolved.has_value()) return status;
  auto shared = std::make_shared<const LaunchCache::Resolved>(*resolved);
  launch_cache_.PutResolved(ref.mci, ref.mci_revision, cloud, generation, *std::move(resolved));
  return shared;
}

int ServerTemplateLogic::RefreshDueLaunches(absl::Duration ahead) {
  constexpr size_t kLimit = 5000;  // of each kind per refresh
  const absl::Time before = absl::Now() + ahead;
  int refreshed = 0;
  // Templates a few hundred to a read (one round trip), not one by one: at a thousand templates
  // in use that was ~130 reads a second on its own.
  constexpr size_t kTemplatesPerRead = 500;
  const std::vector<LaunchCache::DueTemplate> due_templates =
      launch_cache_.DueTemplates(before, kLimit);
  for (size_t first = 0; first < due_templates.size(); first += kTemplatesPerRead) {
    const size_t end = std::min(due_templates.size(), first + kTemplatesPerRead);
    std::vector<Repository::TemplateKey> keys;
    std::map<std::tuple<std::string, std::string, int64_t>, uint64_t> generations;
    for (size_t i = first; i < end; ++i) {
      const LaunchCache::DueTemplate& due = due_templates[i];
      keys.push_back({due.account, due.template_id, due.revision});
      generations[{due.account, due.template_id, due.revision}] = due.generation;
    }
    auto templates = repository_->GetTemplates(keys);
    if (!templates.ok()) {
      // The entries expire as they would have without this; their readers read them again.
      log::Warn("cannot refresh cached templates", {{"error", templates.status().ToString()}});
      break;
    }
    // Those not found are gone: left to expire.
    for (TemplateRecord& t : *templates) {
      auto generation = generations.find({t.account, t.template_id, t.revision});
      if (generation == generations.end()) continue;
      t.references = LaunchOrder(std::move(t.references));
      launch_cache_.PutTemplate(t, generation->second);
      ++refreshed;
    }
  }
  // The catalog's answers a few hundred to a round, 16 calls overlapping: one by one, the refresh
  // took a whole round trip per answer (256 answers ~43 ms against a trivial server on this
  // machine's loopback, ~14 ms overlapping; docs/performance-history.md, change 45).
  constexpr size_t kAnswersPerRound = 256;
  constexpr size_t kAnswersInFlight = 16;
  const std::vector<LaunchCache::DueAnswer> due_answers = launch_cache_.DueAnswers(before, kLimit);
  for (size_t first = 0; first < due_answers.size(); first += kAnswersPerRound) {
    const size_t end = std::min(due_answers.size(), first + kAnswersPerRound);
    std::vector<CatalogClient::ResolveCall> calls;
    for (size_t i = first; i < end; ++i) {
      calls.push_back({due_answers[i].mci, due_answers[i].cloud});
    }
    auto answers = catalog_->ResolveImages(options_.service_token, calls, kAnswersInFlight);
    absl::Status failed;
    for (size_t i = first; i < end; ++i) {
      auto& answer = answers[i - first];
      const absl::Status status = answer.status();
      std::optional<LaunchCache::Resolved> resolved = ResolvedOf(std::move(answer));
      if (!resolved.has_value()) {
        failed = status;
        continue;
      }
      // A refusal (the cloud no longer covered, the MCI gone) is not cached for HEAD: it expires.
      if (!resolved->status.ok()) continue;
      const LaunchCache::DueAnswer& due = due_answers[i];
      launch_cache_.PutResolved(due.mci, 0, due.cloud, due.generation, *std::move(resolved));
      ++refreshed;
    }
    if (!failed.ok()) {
      // The rest are left to expire, as without the refresh: no more rounds at a failing catalog.
      log::Warn("cannot refresh cached catalog answers", {{"error", failed.ToString()}});
      break;
    }
  }
  if (refreshed > 0) Metrics::Global().AddCounter("mci_launch_cache_refreshed_total", refreshed);
  return refreshed;
}

namespace {

void Answer(const Reference& ref, const catalog::ResolveImageResponse& image,
            v1::ResolveLaunchResponse* response) {
  response->set_multi_cloud_image(MultiCloudImageResourceName(ref.mci, ref.mci_revision));
  *response->mutable_image() = image;
}

}  // namespace

std::optional<absl::Status> ServerTemplateLogic::LookUpLaunch(
    const auth::Caller& caller, const v1::ResolveLaunchRequest& request,
    std::shared_ptr<const LaunchCache::Resolved>* out) {
  auto parsed = ParseTemplateName(request.server_template(), "server_template");
  if (!parsed.ok() || !auth::OwnsAccount(caller, parsed->account)) return std::nullopt;
  uint64_t generation = 0;
  auto t = launch_cache_.GetTemplate(parsed->account, parsed->template_id, parsed->revision,
                                     &generation);
  if (t == nullptr) return std::nullopt;
  for (const auto& ref : t->references) {  // in launch order (LoadForLaunch)
    auto hit = launch_cache_.GetResolved(ref.mci, ref.mci_revision, request.cloud(), &generation);
    if (hit == nullptr) return std::nullopt;
    if (hit->status.ok()) {
      *out = std::move(hit);
      return absl::OkStatus();
    }
  }
  // Nothing covers the cloud (or no references): ResolveLaunch words the error.
  return std::nullopt;
}

std::optional<absl::Status> ServerTemplateLogic::ResolveLaunchWireCached(
    const auth::Caller& caller, const v1::ResolveLaunchRequest& request, Wire* out) {
  std::shared_ptr<const LaunchCache::Resolved> hit;
  auto answered = LookUpLaunch(caller, request, &hit);
  if (answered.has_value() && answered->ok()) *out = Wire(hit, &hit->launch_wire);
  return answered;
}

absl::Status ServerTemplateLogic::ResolveLaunchWire(const auth::Caller& caller,
                                                    const v1::ResolveLaunchRequest& request,
                                                    Wire* out) {
  v1::ResolveLaunchResponse response;
  absl::Status status = ResolveLaunch(caller, request, &response);
  if (status.ok()) *out = std::make_shared<const std::string>(response.SerializeAsString());
  return status;
}

absl::Status ServerTemplateLogic::ResolveLaunch(const auth::Caller& caller,
                                                const v1::ResolveLaunchRequest& request,
                                                v1::ResolveLaunchResponse* response) {
  if (absl::Status s = ValidateCloudName(request.cloud(), "cloud"); !s.ok()) return s;
  auto t = LoadForLaunch(caller, request.server_template());
  if (!t.ok()) return t.status();
  const TemplateRecord& tmpl = **t;
  std::string name = TemplateResourceName(tmpl.account, tmpl.template_id, tmpl.revision);
  if (tmpl.references.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ServerTemplate ", name,
                     " references no MultiCloud Image, so it cannot launch anywhere; add one with "
                     "AddMultiCloudImage."));
  }
  // In launch order; each tried in turn (the catalog decides what covers the cloud, and its
  // answers are cached, so the replica is read only to word a refusal).
  for (const auto& ref : tmpl.references) {
    auto resolved = Resolve(caller, ref, request.cloud());
    if (!resolved.ok()) return resolved.status();
    if ((*resolved)->status.ok()) {
      Answer(ref, (*resolved)->response, response);
      return absl::OkStatus();
    }
    // This one has no setting for the cloud (or is gone): try the next one.
  }
  auto replicas = repository_->GetReplicas(MciNames(tmpl.references));
  if (!replicas.ok()) return replicas.status();
  std::vector<std::string> covered = CoveredClouds(tmpl.references, *replicas);
  return absl::FailedPreconditionError(absl::StrCat(
      "No MultiCloud Image of ServerTemplate ", name, " has a setting for ", request.cloud(),
      covered.empty() ? "; its MultiCloud Images cover no cloud yet."
                      : absl::StrCat("; they cover ", absl::StrJoin(covered, ", "), "."),
      " Add a setting for that cloud to one of them, or add a MultiCloud Image that covers it."));
}

absl::Status ServerTemplateLogic::CheckCatalogIdentity(const auth::Caller& caller) const {
  if (caller.Has(auth::Role::kService) && caller.subject == options_.catalog_subject) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("Only the catalog's service identity (", options_.catalog_subject,
                   ") may reserve or release MultiCloud Image deletions."));
}

absl::Status ServerTemplateLogic::ReserveMultiCloudImageDeletion(
    const auth::Caller& caller, const v1::ReserveMultiCloudImageDeletionRequest& request,
    v1::ReserveMultiCloudImageDeletionResponse* response) {
  if (absl::Status s = CheckCatalogIdentity(caller); !s.ok()) return s;
  auto name = ParseMultiCloudImageName(request.multi_cloud_image(), "multi_cloud_image");
  if (!name.ok()) return name.status();
  if (name->revision != 0) {
    return absl::InvalidArgumentError(
        "multi_cloud_image must be a HEAD name: an MCI is deleted with all its revisions.");
  }
  if (request.deletion_id().empty() || request.deletion_id().size() > kMaxRequestId) {
    return absl::InvalidArgumentError("deletion_id is required (at most 128 characters).");
  }
  auto reservation = repository_->ReserveDeletion(name->Head(), request.deletion_id());
  if (!reservation.ok()) return reservation.status();
  response->set_reserved(reservation->reserved);
  for (const auto& u : reservation->usages) FillUsage(u, response->add_usages());
  return absl::OkStatus();
}

absl::Status ServerTemplateLogic::ReleaseMultiCloudImageDeletion(
    const auth::Caller& caller, const v1::ReleaseMultiCloudImageDeletionRequest& request,
    google::protobuf::Empty*) {
  if (absl::Status s = CheckCatalogIdentity(caller); !s.ok()) return s;
  auto name = ParseMultiCloudImageName(request.multi_cloud_image(), "multi_cloud_image");
  if (!name.ok()) return name.status();
  if (name->revision != 0) {
    return absl::InvalidArgumentError(
        "multi_cloud_image must be a HEAD name: an MCI is deleted with all its revisions.");
  }
  if (request.deletion_id().empty() || request.deletion_id().size() > kMaxRequestId) {
    return absl::InvalidArgumentError("deletion_id is required (at most 128 characters).");
  }
  return repository_->ReleaseDeletion(name->Head(), request.deletion_id(), request.deleted());
}

}  // namespace mci::templates
