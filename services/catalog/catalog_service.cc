#include "services/catalog/catalog_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/status.h"

namespace mci::catalog {

namespace tpb = ::mci::templates::v1;

GrpcDeletionPeer::GrpcDeletionPeer(std::shared_ptr<grpc::Channel> channel,
                                   std::string service_token, absl::Duration deadline)
    : stub_(tpb::ServerTemplateService::NewStub(std::move(channel))),
      service_token_(std::move(service_token)),
      deadline_(deadline) {}

void GrpcDeletionPeer::Prepare(grpc::ClientContext* context) const {
  context->AddMetadata("authorization", absl::StrCat("Bearer ", service_token_));
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
}

absl::StatusOr<DeletionPeer::Reservation> GrpcDeletionPeer::Reserve(
    const std::string& mci, const std::string& deletion_id) {
  grpc::ClientContext context;
  Prepare(&context);
  tpb::ReserveMultiCloudImageDeletionRequest req;
  req.set_multi_cloud_image(mci);
  req.set_deletion_id(deletion_id);
  tpb::ReserveMultiCloudImageDeletionResponse resp;
  grpc::Status s = stub_->ReserveMultiCloudImageDeletion(&context, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s, "the template-reference service");
  Reservation out;
  out.reserved = resp.reserved();
  for (const auto& u : resp.usages()) {
    out.usages.push_back(
        u.multi_cloud_image().empty()
            ? u.server_template()
            : absl::StrCat(u.server_template(), " (uses ", u.multi_cloud_image(), ")"));
  }
  return out;
}

absl::Status GrpcDeletionPeer::Release(const std::string& mci, const std::string& deletion_id,
                                       bool deleted) {
  grpc::ClientContext context;
  Prepare(&context);
  tpb::ReleaseMultiCloudImageDeletionRequest req;
  req.set_multi_cloud_image(mci);
  req.set_deletion_id(deletion_id);
  req.set_deleted(deleted);
  google::protobuf::Empty resp;
  return FromGrpcStatus(stub_->ReleaseMultiCloudImageDeletion(&context, req, &resp),
                        "the template-reference service");
}

}  // namespace mci::catalog
