#include "services/marketplace/catalog_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"

namespace mci::marketplace {
namespace {

constexpr absl::string_view kPeer = "The catalog service";
// A runaway listing is cut short rather than looping forever.
constexpr int kMaxImagePages = 50;

class GrpcCatalogClient : public CatalogClient {
 public:
  GrpcCatalogClient(std::shared_ptr<grpc::Channel> channel, absl::Duration deadline)
      : stub_(catalog::v1::CatalogService::NewStub(std::move(channel))), deadline_(deadline) {}

  absl::StatusOr<catalog::v1::MultiCloudImage> GetMultiCloudImage(
      const std::string& token, const std::string& name) override {
    catalog::v1::GetMultiCloudImageRequest request;
    request.set_name(name);
    catalog::v1::MultiCloudImage response;
    auto context = Context(token);
    absl::Status status =
        FromGrpcStatus(stub_->GetMultiCloudImage(context.get(), request, &response), kPeer);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<std::vector<catalog::v1::Image>> ListImages(const std::string& token,
                                                             const std::string& parent) override {
    std::vector<catalog::v1::Image> images;
    catalog::v1::ListImagesRequest request;
    request.set_parent(parent);
    request.set_page_size(500);
    for (int page = 0; page < kMaxImagePages; ++page) {
      catalog::v1::ListImagesResponse response;
      auto context = Context(token);
      absl::Status status =
          FromGrpcStatus(stub_->ListImages(context.get(), request, &response), kPeer);
      if (!status.ok()) return status;
      for (auto& image : *response.mutable_images()) images.push_back(std::move(image));
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return images;
  }

  absl::StatusOr<catalog::v1::MultiCloudImage> ImportMultiCloudImage(
      const std::string& token, const catalog::v1::ImportMultiCloudImageRequest& request) override {
    catalog::v1::MultiCloudImage response;
    auto context = Context(token);
    absl::Status status =
        FromGrpcStatus(stub_->ImportMultiCloudImage(context.get(), request, &response), kPeer);
    if (!status.ok()) return status;
    return response;
  }

 private:
  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    context->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
    return context;
  }

  std::unique_ptr<catalog::v1::CatalogService::Stub> stub_;
  absl::Duration deadline_;
};

}  // namespace

std::unique_ptr<CatalogClient> NewGrpcCatalogClient(std::shared_ptr<grpc::Channel> channel,
                                                    absl::Duration deadline) {
  return std::make_unique<GrpcCatalogClient>(std::move(channel), deadline);
}

}  // namespace mci::marketplace
