#pragma once

// The catalog as seen by the template-reference service: calls made on a caller's behalf, with
// its token forwarded and a deadline.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"

namespace mci::templates {

class CatalogClient {
 public:
  virtual ~CatalogClient() = default;
  // HEAD or name@N; NOT_FOUND for unknown MCIs and other accounts' ones.
  virtual absl::StatusOr<mci::catalog::v1::MultiCloudImage> GetMultiCloudImage(
      const std::string& token, const std::string& name) = 0;
  // Snapshots HEAD into its next revision.
  virtual absl::StatusOr<mci::catalog::v1::MultiCloudImage> CommitMultiCloudImage(
      const std::string& token, const std::string& name, const std::string& message) = 0;
  virtual absl::StatusOr<mci::catalog::v1::ResolveImageResponse> ResolveImage(
      const std::string& token, const std::string& name, const std::string& cloud) = 0;

  // Many ResolveImage calls with one token, at most `in_flight` of them outstanding at once: the
  // answers in the calls' order. This one asks one by one; GrpcCatalogClient's overlaps them.
  struct ResolveCall {
    std::string name;
    std::string cloud;
  };
  virtual std::vector<absl::StatusOr<mci::catalog::v1::ResolveImageResponse>> ResolveImages(
      const std::string& token, const std::vector<ResolveCall>& calls, size_t in_flight);
};

class GrpcCatalogClient : public CatalogClient {
 public:
  GrpcCatalogClient(std::shared_ptr<grpc::Channel> channel, absl::Duration deadline);

  absl::StatusOr<mci::catalog::v1::MultiCloudImage> GetMultiCloudImage(
      const std::string& token, const std::string& name) override;
  absl::StatusOr<mci::catalog::v1::MultiCloudImage> CommitMultiCloudImage(
      const std::string& token, const std::string& name, const std::string& message) override;
  absl::StatusOr<mci::catalog::v1::ResolveImageResponse> ResolveImage(
      const std::string& token, const std::string& name, const std::string& cloud) override;
  std::vector<absl::StatusOr<mci::catalog::v1::ResolveImageResponse>> ResolveImages(
      const std::string& token, const std::vector<ResolveCall>& calls, size_t in_flight) override;

 private:
  void Prepare(grpc::ClientContext* context, const std::string& token) const;

  std::unique_ptr<mci::catalog::v1::CatalogService::Stub> stub_;
  absl::Duration deadline_;
};

}  // namespace mci::templates
