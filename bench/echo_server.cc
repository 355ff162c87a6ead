// mci-echo-server: the ceiling of the benchmark's read paths. The same gRPC build, callback API
// and server defaults as the services (libs/common/server.cc), and no work at all per call.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/synchronization/mutex.h"
#include "mci/bench/v1/echo.grpc.pb.h"

namespace {

class EchoService final : public mci::bench::v1::EchoService::CallbackService {
 public:
  EchoService() : filler_(1 << 16, 'x') {}
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const mci::bench::v1::EchoRequest* request,
                                 mci::bench::v1::EchoResponse* response) override {
    size_t n = static_cast<size_t>(std::max(0, request->response_bytes()));
    response->set_payload(filler_.data(), std::min(n, filler_.size()));
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  std::string filler_;
};

}  // namespace

int main(int argc, char** argv) {
  // As ServiceHost does for the services (libs/common/server.cc), so the ceiling stays fair.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string address = "127.0.0.1:0";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--grpc-address=", 15) == 0) address = argv[i] + 15;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  EchoService service;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "mci-echo-server: cannot listen on %s\n", address.c_str());
    return 1;
  }
  std::fprintf(stderr, "mci-echo-server: serving on port %d\n", port);
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
