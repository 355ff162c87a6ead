#pragma once

// The RPC logic of mci.templates.v1.ServerTemplateService, free of gRPC wiring: a unit test
// constructs it with a fake repository or catalog.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/common/auth.h"
#include "mci/templates/v1/templates.pb.h"
#include "services/templates/catalog_client.h"
#include "services/templates/launch_cache.h"
#include "services/templates/model.h"
#include "services/templates/names.h"
#include "services/templates/repository.h"

namespace mci::templates {

// Clouds covered by the references, sorted and without duplicates.
std::vector<std::string> CoveredClouds(const std::vector<Reference>& refs,
                                       const std::map<std::string, ReplicaRecord>& replicas);
// The references in launch order: the default first, then the others as added. ResolveLaunch
// tries them in turn; the catalog decides which cover the cloud (its answers are cached, refusals
// of committed revisions included, so a revision that lacks the cloud costs one call, once).
std::vector<Reference> LaunchOrder(std::vector<Reference> refs);

struct LogicOptions {
  // The only service identity allowed to reserve and release deletions.
  std::string catalog_subject = "catalog-service";
  // The launch cache's lifetime of templates and HEAD answers (LaunchCache).
  absl::Duration launch_cache_ttl = absl::Seconds(10);
  // This service's own token (role service): RefreshDueLaunches asks the catalog with it.
  std::string service_token;
};

class ServerTemplateLogic {
 public:
  ServerTemplateLogic(Repository* repository, CatalogClient* catalog, LogicOptions options = {});

  absl::Status CreateServerTemplate(const auth::Caller& caller,
                                    const v1::CreateServerTemplateRequest& request,
                                    v1::ServerTemplate* response);
  absl::Status GetServerTemplate(const auth::Caller& caller,
                                 const v1::GetServerTemplateRequest& request,
                                 v1::ServerTemplate* response);
  absl::Status ListServerTemplates(const auth::Caller& caller,
                                   const v1::ListServerTemplatesRequest& request,
                                   v1::ListServerTemplatesResponse* response);
  absl::Status UpdateServerTemplate(const auth::Caller& caller,
                                    const v1::UpdateServerTemplateRequest& request,
                                    v1::ServerTemplate* response);
  absl::Status DeleteServerTemplate(const auth::Caller& caller,
                                    const v1::DeleteServerTemplateRequest& request,
                                    google::protobuf::Empty* response);
  absl::Status CloneServerTemplate(const auth::Caller& caller,
                                   const v1::CloneServerTemplateRequest& request,
                                   v1::ServerTemplate* response);
  absl::Status CommitServerTemplate(const auth::Caller& caller,
                                    const v1::CommitServerTemplateRequest& request,
                                    v1::ServerTemplate* response);
  absl::Status AddMultiCloudImage(const auth::Caller& caller,
                                  const v1::AddMultiCloudImageRequest& request,
                                  v1::ServerTemplate* response);
  absl::Status RemoveMultiCloudImage(const auth::Caller& caller,
                                     const v1::RemoveMultiCloudImageRequest& request,
                                     v1::ServerTemplate* response);
  absl::Status SetDefaultMultiCloudImage(const auth::Caller& caller,
                                         const v1::SetDefaultMultiCloudImageRequest& request,
                                         v1::ServerTemplate* response);
  absl::Status ListMultiCloudImageUsages(const auth::Caller& caller,
                                         const v1::ListMultiCloudImageUsagesRequest& request,
                                         v1::ListMultiCloudImageUsagesResponse* response);
  absl::Status ListSupportedClouds(const auth::Caller& caller,
                                   const v1::ListSupportedCloudsRequest& request,
                                   v1::ListSupportedCloudsResponse* response);
  absl::Status ResolveLaunch(const auth::Caller& caller, const v1::ResolveLaunchRequest& request,
                             v1::ResolveLaunchResponse* response);
  // ResolveLaunch from memory (LaunchCache), the answer serialized as the raw-registered method
  // replies it (the cached bytes themselves: no copy of the message, no serialization per call),
  // or nullopt when something it needs is not cached; then ResolveLaunchWire runs (ResolveLaunch,
  // which fills the cache).
  using Wire = std::shared_ptr<const std::string>;
  std::optional<absl::Status> ResolveLaunchWireCached(const auth::Caller& caller,
                                                      const v1::ResolveLaunchRequest& request,
                                                      Wire* out);
  absl::Status ResolveLaunchWire(const auth::Caller& caller,
                                 const v1::ResolveLaunchRequest& request, Wire* out);
  absl::Status ReserveMultiCloudImageDeletion(
      const auth::Caller& caller, const v1::ReserveMultiCloudImageDeletionRequest& request,
      v1::ReserveMultiCloudImageDeletionResponse* response);
  absl::Status ReleaseMultiCloudImageDeletion(
      const auth::Caller& caller, const v1::ReleaseMultiCloudImageDeletionRequest& request,
      google::protobuf::Empty* response);

  // Re-reads the launch cache's entries that expire within `ahead` and were read since they
  // were cached (templates from the repository, HEAD answers from the catalog with the service
  // token) and caches them again with a new lifetime: a launch in steady use is answered from
  // memory, not by the call that finds its entry expired (main runs it every second, with
  // `ahead` above that). Returns how many were refreshed.
  int RefreshDueLaunches(absl::Duration ahead = absl::Seconds(2));

  // Called after every write of a template by this replica (main announces it to the others).
  void set_on_template_changed(
      std::function<void(const std::string& account, const std::string& template_id)> fn) {
    on_template_changed_ = std::move(fn);
  }
  // Where main feeds other replicas' template announcements and MCI events.
  LaunchCache& launch_cache() { return launch_cache_; }

 private:
  // `name` parsed, when it is the caller's account's (NOT_FOUND for another account's).
  absl::StatusOr<TemplateName> ParseOwned(const auth::Caller& caller, absl::string_view name,
                                          absl::string_view field, bool head_only) const;
  // The template `name` of the caller's account (NOT_FOUND for another account's).
  absl::StatusOr<TemplateRecord> Load(const auth::Caller& caller, absl::string_view name,
                                      absl::string_view field, bool head_only);
  // Makes sure the replica knows the MCI (revision), asking the catalog when it does not: a
  // caller can reference an MCI it just created before the event arrives.
  absl::Status EnsureReplica(const auth::Caller& caller, const std::string& mci, int64_t revision);
  absl::Status Fill(const TemplateRecord& record, v1::ServerTemplate* out);
  absl::Status CheckCatalogIdentity(const auth::Caller& caller) const;
  // The cached answer of a launch (`*out`), or nullopt when something it needs is not cached.
  std::optional<absl::Status> LookUpLaunch(const auth::Caller& caller,
                                           const v1::ResolveLaunchRequest& request,
                                           std::shared_ptr<const LaunchCache::Resolved>* out);
  // The template for ResolveLaunch: from the launch cache, else read and cached.
  absl::StatusOr<std::shared_ptr<const TemplateRecord>> LoadForLaunch(const auth::Caller& caller,
                                                                      absl::string_view name);
  // The catalog's answer for `ref` in `cloud` (cached when it may be): OK, FAILED_PRECONDITION
  // (no setting for the cloud) or NOT_FOUND in Resolved::status; other failures as the error.
  absl::StatusOr<std::shared_ptr<const LaunchCache::Resolved>> Resolve(const auth::Caller& caller,
                                                                       const Reference& ref,
                                                                       const std::string& cloud);
  // Drops the template from this replica's launch cache and tells the others.
  void Changed(const std::string& account, const std::string& template_id);

  Repository* repository_;
  CatalogClient* catalog_;
  LogicOptions options_;
  LaunchCache launch_cache_;
  std::function<void(const std::string&, const std::string&)> on_template_changed_;
};

}  // namespace mci::templates
