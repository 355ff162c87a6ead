#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"

namespace mci::marketplace {

// The catalog calls the marketplace makes, each on behalf of a caller whose token it forwards.
// The catalog stays the only writer of MCIs.
class CatalogClient {
 public:
  virtual ~CatalogClient() = default;
  // HEAD or name@N, with settings.
  virtual absl::StatusOr<catalog::v1::MultiCloudImage> GetMultiCloudImage(
      const std::string& token, const std::string& name) = 0;
  // Every image the caller sees in `parent` (clouds/{c} or clouds/-), all pages.
  virtual absl::StatusOr<std::vector<catalog::v1::Image>> ListImages(const std::string& token,
                                                                     const std::string& parent) = 0;
  virtual absl::StatusOr<catalog::v1::MultiCloudImage> ImportMultiCloudImage(
      const std::string& token, const catalog::v1::ImportMultiCloudImageRequest& request) = 0;
};

// Over gRPC, each call with `authorization: Bearer <token>` and the given deadline.
std::unique_ptr<CatalogClient> NewGrpcCatalogClient(std::shared_ptr<grpc::Channel> channel,
                                                    absl::Duration deadline);

}  // namespace mci::marketplace
