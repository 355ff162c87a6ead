#include "services/templates/catalog_client.h"

#include "absl/time/clock.h"
#include "libs/common/status.h"

namespace mci::templates {

namespace catalog = mci::catalog::v1;

constexpr absl::string_view kPeer = "The catalog service";

GrpcCatalogClient::GrpcCatalogClient(std::shared_ptr<grpc::Channel> channel,
                                     absl::Duration deadline)
    : stub_(catalog::CatalogService::NewStub(std::move(channel))), deadline_(deadline) {}

void GrpcCatalogClient::Prepare(grpc::ClientContext* context, const std::string& token) const {
  context->AddMetadata("authorization", "Bearer " + token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
}

absl::StatusOr<catalog::MultiCloudImage> GrpcCatalogClient::GetMultiCloudImage(
    const std::string& token, const std::string& name) {
  grpc::ClientContext context;
  Prepare(&context, token);
  catalog::GetMultiCloudImageRequest request;
  request.set_name(name);
  catalog::MultiCloudImage response;
  grpc::Status status = stub_->GetMultiCloudImage(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status, kPeer);
  return response;
}

absl::StatusOr<catalog::MultiCloudImage> GrpcCatalogClient::CommitMultiCloudImage(
    const std::string& token, const std::string& name, const std::string& message) {
  grpc::ClientContext context;
  Prepare(&context, token);
  catalog::CommitMultiCloudImageRequest request;
  request.set_name(name);
  request.set_message(message);
  catalog::MultiCloudImage response;
  grpc::Status status = stub_->CommitMultiCloudImage(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status, kPeer);
  return response;
}

absl::StatusOr<catalog::ResolveImageResponse> GrpcCatalogClient::ResolveImage(
    const std::string& token, const std::string& name, const std::string& cloud) {
  grpc::ClientContext context;
  Prepare(&context, token);
  catalog::ResolveImageRequest request;
  request.set_name(name);
  request.set_cloud(cloud);
  catalog::ResolveImageResponse response;
  grpc::Status status = stub_->ResolveImage(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status, kPeer);
  return response;
}

}  // namespace mci::templates
