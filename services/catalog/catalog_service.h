#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "libs/common/auth.h"
#include "libs/common/rpc.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"
#include "mci/templates/v1/templates.grpc.pb.h"
#include "services/catalog/catalog.h"

namespace mci::catalog {

// gRPC adapter of CatalogService: authentication, roles and status mapping around Catalog.
// GetMultiCloudImage and ResolveImage are registered raw: their cached answers go out as the
// bytes cached.
class CatalogService final : public pb::CatalogService::WithRawCallbackMethod_ResolveImage<
                                 pb::CatalogService::WithRawCallbackMethod_GetMultiCloudImage<
                                     pb::CatalogService::CallbackService>> {
 public:
  CatalogService(Catalog* impl, const auth::Authenticator* authenticator)
      : impl_(*impl), authenticator_(*authenticator) {}

  using R = auth::Role;
  MCI_RPC(ListClouds, pb::ListCloudsRequest, pb::ListCloudsResponse, R::kObserver)
  MCI_RPC(RegisterCloud, pb::RegisterCloudRequest, pb::Cloud, R::kAdmin)
  MCI_RPC(ListInstanceTypes, pb::ListInstanceTypesRequest, pb::ListInstanceTypesResponse,
          R::kObserver)
  MCI_RPC(ListImages, pb::ListImagesRequest, pb::ListImagesResponse, R::kObserver)
  MCI_RPC(RegisterImage, pb::RegisterImageRequest, pb::Image, R::kActor)
  MCI_RPC(ShareImage, pb::ShareImageRequest, pb::Image, R::kActor)
  MCI_RPC(CreateMultiCloudImage, pb::CreateMultiCloudImageRequest, pb::MultiCloudImage,
          R::kDesigner)
  // Answered from memory when cached (MciCache), with the answer's cached serialization.
  MCI_RPC_CACHED_WIRE(GetMultiCloudImage, pb::GetMultiCloudImageRequest, R::kObserver)
  MCI_RPC(ListMultiCloudImages, pb::ListMultiCloudImagesRequest, pb::ListMultiCloudImagesResponse,
          R::kObserver)
  MCI_RPC(UpdateMultiCloudImage, pb::UpdateMultiCloudImageRequest, pb::MultiCloudImage,
          R::kDesigner)
  MCI_RPC(DeleteMultiCloudImage, pb::DeleteMultiCloudImageRequest, google::protobuf::Empty,
          R::kDesigner)
  MCI_RPC(CloneMultiCloudImage, pb::CloneMultiCloudImageRequest, pb::MultiCloudImage, R::kDesigner)
  MCI_RPC(CommitMultiCloudImage, pb::CommitMultiCloudImageRequest, pb::MultiCloudImage,
          R::kDesigner)
  MCI_RPC(ListMultiCloudImageRevisions, pb::ListMultiCloudImageRevisionsRequest,
          pb::ListMultiCloudImageRevisionsResponse, R::kObserver)
  MCI_RPC(ImportMultiCloudImage, pb::ImportMultiCloudImageRequest, pb::MultiCloudImage, R::kLibrary)
  MCI_RPC(CreateMultiCloudImageSetting, pb::CreateMultiCloudImageSettingRequest,
          pb::MultiCloudImageSetting, R::kDesigner)
  MCI_RPC(UpdateMultiCloudImageSetting, pb::UpdateMultiCloudImageSettingRequest,
          pb::MultiCloudImageSetting, R::kDesigner)
  MCI_RPC(DeleteMultiCloudImageSetting, pb::DeleteMultiCloudImageSettingRequest,
          google::protobuf::Empty, R::kDesigner)
  MCI_RPC(ListMultiCloudImageSettings, pb::ListMultiCloudImageSettingsRequest,
          pb::ListMultiCloudImageSettingsResponse, R::kObserver)
  MCI_RPC(ListAvailableClouds, pb::ListAvailableCloudsRequest, pb::ListAvailableCloudsResponse,
          R::kObserver)
  MCI_RPC(AddTags, pb::AddTagsRequest, pb::MultiCloudImage, R::kDesigner)
  MCI_RPC(RemoveTags, pb::RemoveTagsRequest, pb::MultiCloudImage, R::kDesigner)
  // The launch hot path, answered from the resolve cache on gRPC's thread when cached, with the
  // answer's cached serialization.
  MCI_RPC_CACHED_WIRE(ResolveImage, pb::ResolveImageRequest, R::kObserver)
  MCI_RPC(ValidateMultiCloudImage, pb::ValidateMultiCloudImageRequest,
          pb::ValidateMultiCloudImageResponse, R::kObserver)

 private:
  Catalog& impl_;
  const auth::Authenticator& authenticator_;
};

// The deletion saga's peer over gRPC: the template-reference service, called with the catalog's
// service identity and a deadline.
class GrpcDeletionPeer final : public DeletionPeer {
 public:
  GrpcDeletionPeer(std::shared_ptr<grpc::Channel> channel, std::string service_token,
                   absl::Duration deadline = absl::Seconds(5));
  absl::StatusOr<Reservation> Reserve(const std::string& mci,
                                      const std::string& deletion_id) override;
  absl::Status Release(const std::string& mci, const std::string& deletion_id,
                       bool deleted) override;

 private:
  void Prepare(grpc::ClientContext* context) const;
  std::unique_ptr<mci::templates::v1::ServerTemplateService::Stub> stub_;
  std::string service_token_;
  absl::Duration deadline_;
};

}  // namespace mci::catalog
