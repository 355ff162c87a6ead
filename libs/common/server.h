#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace httplib {
class Server;
}

namespace mci {

// grpc.health.v1 name that answers SERVING while the process runs (for liveness probes); "" and
// the service's own name follow readiness.
inline constexpr char kLivenessService[] = "liveness";

struct ServerOptions {
  // Fully qualified service name, reported by grpc.health.v1 (e.g. mci.catalog.v1.CatalogService).
  std::string service_name;
  // host:port for gRPC; port 0 picks a free one.
  std::string grpc_address = "127.0.0.1:0";
  // host:port for /healthz, /readyz, /metrics; empty disables.
  std::string http_address;
  // Readiness: true while every dependency (database, NATS) is reachable. Polled every second.
  std::function<bool()> ready;
  // Called on SIGTERM/SIGINT before the gRPC server drains (stop background loops).
  std::function<void()> on_shutdown;
};

// Runs a gRPC server with reflection and grpc.health.v1 tied to readiness, plus an HTTP endpoint
// for probes and Prometheus metrics, until SIGTERM or SIGINT.
class ServiceHost {
 public:
  explicit ServiceHost(ServerOptions options);
  ~ServiceHost();

  void AddService(grpc::Service* service) { services_.push_back(service); }
  absl::Status Start();
  // Blocks until a termination signal, then stops accepting and drains in-flight calls.
  void Wait();
  void Shutdown();
  int grpc_port() const { return grpc_port_; }
  bool ready() const { return ready_.load(); }

 private:
  void ReadinessLoop();
  void SetReadiness(bool ready);

  ServerOptions options_;
  std::vector<grpc::Service*> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  std::thread readiness_thread_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  int grpc_port_ = 0;
};

// Blocks SIGTERM/SIGINT in every thread (call first in main) so that Wait() can receive them.
void BlockTerminationSignals();

}  // namespace mci
