#pragma once

#include <grpcpp/grpcpp.h>

#include "libs/common/auth.h"
#include "libs/common/rpc.h"
#include "mci/marketplace/v1/marketplace.grpc.pb.h"
#include "services/marketplace/marketplace.h"

namespace mci::marketplace {

// The gRPC adapter: authenticates, checks each method's role and delegates to Marketplace.
class MarketplaceService final : public v1::MarketplaceService::CallbackService {
 public:
  MarketplaceService(Marketplace* marketplace, const auth::Authenticator* authenticator)
      : impl_(*marketplace), authenticator_(*authenticator) {}

  MCI_RPC(PublishMultiCloudImage, v1::PublishMultiCloudImageRequest,
          v1::PublishMultiCloudImageResponse, auth::Role::kPublisher)
  MCI_RPC(GetPublication, v1::GetPublicationRequest, v1::Publication, auth::Role::kObserver)
  MCI_RPC(ListPublications, v1::ListPublicationsRequest, v1::ListPublicationsResponse,
          auth::Role::kObserver)
  MCI_RPC(UpdatePublicationSharing, v1::UpdatePublicationSharingRequest,
          v1::UpdatePublicationSharingResponse, auth::Role::kPublisher)
  MCI_RPC(ImportPublication, v1::ImportPublicationRequest, catalog::v1::MultiCloudImage,
          auth::Role::kLibrary)
  MCI_RPC(ListAvailableUpdates, v1::ListAvailableUpdatesRequest, v1::ListAvailableUpdatesResponse,
          auth::Role::kObserver)
  MCI_RPC(ComparePublication, v1::ComparePublicationRequest, v1::ComparePublicationResponse,
          auth::Role::kObserver)
  // Library here; Marketplace also requires designer.
  MCI_RPC(UpdateImportedMultiCloudImage, v1::UpdateImportedMultiCloudImageRequest,
          catalog::v1::MultiCloudImage, auth::Role::kLibrary)
  MCI_RPC(GetPublicationUsage, v1::GetPublicationUsageRequest, v1::PublicationUsage,
          auth::Role::kObserver)

 private:
  Marketplace& impl_;
  const auth::Authenticator& authenticator_;
};

}  // namespace mci::marketplace
