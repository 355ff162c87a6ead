#include "services/templates/catalog_client.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "libs/common/status.h"

namespace mci::templates {

namespace catalog = mci::catalog::v1;

constexpr absl::string_view kPeer = "The catalog service";

std::vector<absl::StatusOr<catalog::ResolveImageResponse>> CatalogClient::ResolveImages(
    const std::string& token, const std::vector<ResolveCall>& calls, size_t) {
  std::vector<absl::StatusOr<catalog::ResolveImageResponse>> answers;
  answers.reserve(calls.size());
  for (const ResolveCall& call : calls) {
    answers.push_back(ResolveImage(token, call.name, call.cloud));
  }
  return answers;
}

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

// gRPC's callback API: the calls overlap on the channel's connection, each answered on one of
// gRPC's threads, while this thread only starts them and waits.
std::vector<absl::StatusOr<catalog::ResolveImageResponse>> GrpcCatalogClient::ResolveImages(
    const std::string& token, const std::vector<ResolveCall>& calls, size_t in_flight) {
  struct Call {
    grpc::ClientContext context;
    catalog::ResolveImageRequest request;
    catalog::ResolveImageResponse response;
    grpc::Status status;
  };
  std::vector<Call> state(calls.size());
  std::mutex mu;
  std::condition_variable answered;
  size_t started = 0, done = 0;  // outstanding: started - done
  in_flight = std::max<size_t>(1, in_flight);
  std::unique_lock<std::mutex> lock(mu);
  while (done < calls.size()) {
    while (started - done < in_flight && started < calls.size()) {
      const size_t i = started++;
      lock.unlock();
      Call* call = &state[i];
      Prepare(&call->context, token);
      call->request.set_name(calls[i].name);
      call->request.set_cloud(calls[i].cloud);
      // Notified under the lock: the waiter's return, and with it the end of `answered`, waits
      // for the callback to let go of it.
      stub_->async()->ResolveImage(&call->context, &call->request, &call->response,
                                   [call, &mu, &done, &answered](grpc::Status status) {
                                     std::lock_guard<std::mutex> done_lock(mu);
                                     call->status = std::move(status);
                                     ++done;
                                     answered.notify_one();
                                   });
      lock.lock();
    }
    answered.wait(lock, [&] {
      return done == calls.size() || (started - done < in_flight && started < calls.size());
    });
  }
  std::vector<absl::StatusOr<catalog::ResolveImageResponse>> answers;
  answers.reserve(calls.size());
  for (Call& call : state) {
    if (call.status.ok()) {
      answers.push_back(std::move(call.response));
    } else {
      answers.push_back(FromGrpcStatus(call.status, kPeer));
    }
  }
  return answers;
}

}  // namespace mci::templates
