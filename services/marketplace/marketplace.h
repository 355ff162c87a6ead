#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/common/auth.h"
#include "mci/catalog/v1/catalog.pb.h"
#include "mci/marketplace/v1/marketplace.pb.h"
#include "services/marketplace/catalog_client.h"
#include "services/marketplace/repository.h"

namespace mci::marketplace {

// The marketplace's rules, free of gRPC wiring: each method takes the authenticated caller (its
// method role already checked by the adapter), a request, and fills the response.
class Marketplace {
 public:
  Marketplace(Repository* repository, CatalogClient* catalog)
      : repository_(repository), catalog_(catalog) {}

  absl::Status PublishMultiCloudImage(const auth::Caller& caller,
                                      const v1::PublishMultiCloudImageRequest& request,
                                      v1::PublishMultiCloudImageResponse* response);
  absl::Status GetPublication(const auth::Caller& caller, const v1::GetPublicationRequest& request,
                              v1::Publication* response);
  absl::Status ListPublications(const auth::Caller& caller,
                                const v1::ListPublicationsRequest& request,
                                v1::ListPublicationsResponse* response);
  absl::Status UpdatePublicationSharing(const auth::Caller& caller,
                                        const v1::UpdatePublicationSharingRequest& request,
                                        v1::UpdatePublicationSharingResponse* response);
  absl::Status ImportPublication(const auth::Caller& caller,
                                 const v1::ImportPublicationRequest& request,
                                 catalog::v1::MultiCloudImage* response);
  absl::Status ListAvailableUpdates(const auth::Caller& caller,
                                    const v1::ListAvailableUpdatesRequest& request,
                                    v1::ListAvailableUpdatesResponse* response);
  absl::Status ComparePublication(const auth::Caller& caller,
                                  const v1::ComparePublicationRequest& request,
                                  v1::ComparePublicationResponse* response);
  absl::Status UpdateImportedMultiCloudImage(
      const auth::Caller& caller, const v1::UpdateImportedMultiCloudImageRequest& request,
      catalog::v1::MultiCloudImage* response);
  absl::Status GetPublicationUsage(const auth::Caller& caller,
                                   const v1::GetPublicationUsageRequest& request,
                                   v1::PublicationUsage* response);

 private:
  // The publication if the caller may see it; NOT_FOUND otherwise, the same as for none.
  absl::StatusOr<PublicationRecord> LoadVisible(const auth::Caller& caller, const std::string& name,
                                                absl::string_view field);
  // The publication an imported MCI (or a clone of one, followed back within the account) came
  // from, and the revision it mirrors.
  struct ImportOrigin {
    PublicationRecord publication;
    catalog::v1::MultiCloudImage imported;
  };
  absl::StatusOr<ImportOrigin> FindImportOrigin(const auth::Caller& caller,
                                                const std::string& name);
  absl::StatusOr<std::vector<catalog::v1::Finding>> ImageWarnings(
      const auth::Caller& caller, const catalog::v1::MultiCloudImage& snapshot,
      v1::Visibility visibility, const std::vector<std::string>& accounts);

  Repository* repository_;
  CatalogClient* catalog_;
};

// The publication as a caller sees it (shared_with only for its publisher).
v1::Publication ToProto(const PublicationRecord& record, const auth::Caller& caller);
bool CanSee(const auth::Caller& caller, const PublicationRecord& record);

}  // namespace mci::marketplace
