#pragma once

// The RPC logic of mci.templates.v1.ServerTemplateService, free of gRPC wiring: a unit test
// constructs it with a fake repository or catalog.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "libs/common/auth.h"
#include "mci/templates/v1/templates.pb.h"
#include "services/templates/catalog_client.h"
#include "services/templates/model.h"
#include "services/templates/repository.h"

namespace mci::templates {

// Clouds covered by the references, sorted and without duplicates.
std::vector<std::string> CoveredClouds(const std::vector<Reference>& refs,
                                       const std::map<std::string, ReplicaRecord>& replicas);
// The references to try for a launch in `cloud`, in launch order: the default first, then the
// others as added. Committed revisions are immutable, so those the replica knows not to cover the
// cloud are left out; a HEAD may have gained the cloud since the replica last heard of it, so
// HEADs are always tried (the catalog decides).
std::vector<Reference> LaunchCandidates(const std::vector<Reference>& refs,
                                        const std::map<std::string, ReplicaRecord>& replicas,
                                        const std::string& cloud);

class ServerTemplateLogic {
 public:
  // `catalog_subject`: the only service identity allowed to reserve and release deletions.
  ServerTemplateLogic(Repository* repository, CatalogClient* catalog,
                      std::string catalog_subject = "catalog-service");

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
  absl::Status ReserveMultiCloudImageDeletion(
      const auth::Caller& caller, const v1::ReserveMultiCloudImageDeletionRequest& request,
      v1::ReserveMultiCloudImageDeletionResponse* response);
  absl::Status ReleaseMultiCloudImageDeletion(
      const auth::Caller& caller, const v1::ReleaseMultiCloudImageDeletionRequest& request,
      google::protobuf::Empty* response);

 private:
  // The template `name` of the caller's account (NOT_FOUND for another account's).
  absl::StatusOr<TemplateRecord> Load(const auth::Caller& caller, absl::string_view name,
                                      absl::string_view field, bool head_only);
  // Makes sure the replica knows the MCI (revision), asking the catalog when it does not: a
  // caller can reference an MCI it just created before the event arrives.
  absl::Status EnsureReplica(const auth::Caller& caller, const std::string& mci, int64_t revision);
  absl::Status Fill(const TemplateRecord& record, v1::ServerTemplate* out);
  absl::Status CheckCatalogIdentity(const auth::Caller& caller) const;
  absl::StatusOr<mci::catalog::v1::ResolveImageResponse> Resolve(const auth::Caller& caller,
                                                                 const Reference& ref,
                                                                 const std::string& cloud);

  Repository* repository_;
  CatalogClient* catalog_;
  std::string catalog_subject_;
  // Revisions are immutable, so what the catalog resolves for name@N + cloud never changes.
  std::mutex cache_mu_;
  std::map<std::pair<std::string, std::string>, mci::catalog::v1::ResolveImageResponse> cache_;
};

}  // namespace mci::templates
