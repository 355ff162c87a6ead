#include "libs/common/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/common/log.h"
#include "libs/common/metrics.h"
#include "libs/common/rpc.h"

namespace mci {

namespace internal {
namespace {

// The handler threads of every service in this process (see RunBlocking in rpc.h). Their number
// bounds how many calls wait on the database or a peer at once: a few more than the database pool
// (8 connections by default), so that a call that does not need the database is not stuck behind
// them. MCI_RPC_THREADS overrides it.
class HandlerPool {
 public:
  HandlerPool() {
    int threads = 16;
    if (const char* env = std::getenv("MCI_RPC_THREADS")) {
      int n = 0;
      if (absl::SimpleAtoi(env, &n) && n > 0) threads = n;
    }
    for (int i = 0; i < threads; ++i) std::thread([this] { Loop(); }).detach();
  }
  void Run(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    pthread_setname_np(pthread_self(), "mci-handler");
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
};

}  // namespace

void RunBlocking(std::function<void()> task) {
  // Never destroyed: its detached threads may still run while the process exits.
  static auto* pool = new HandlerPool();
  pool->Run(std::move(task));
}

}  // namespace internal

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

ServiceHost::ServiceHost(ServerOptions options) : options_(std::move(options)) {
  // Debian's Abseil is built with absl::Mutex deadlock detection on, and gRPC locks absl::Mutex
  // on every call: the lock-order graph it keeps cost ~3% of the CPU of a cached read.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

ServiceHost::~ServiceHost() { Shutdown(); }

absl::Status ServiceHost::Start() {
  // Readiness is known before the port opens: gRPC's health service answers SERVING for "" from
  // the moment the server starts, and the first check (a database round trip) can take a while.
  ready_ = options_.ready ? options_.ready() : true;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.grpc_address, grpc::InsecureServerCredentials(), &grpc_port_);
  for (grpc::Service* s : services_) builder.RegisterService(s);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("Cannot listen for gRPC on ", options_.grpc_address, "."));
  }
  // "" and the service's own name report readiness; "liveness" stays SERVING while the process
  // runs, for liveness probes that must not restart a pod whose database is briefly away. It is set
  // last, so a client that sees it SERVING finds every other name registered.
  SetReadiness(ready_);
  server_->GetHealthCheckService()->SetServingStatus(kLivenessService, true);
  readiness_thread_ = std::thread([this] { ReadinessLoop(); });

  if (!options_.http_address.empty()) {
    http_ = std::make_unique<httplib::Server>();
    http_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok\n", "text/plain");
    });
    http_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
      res.status = ready_ ? 200 : 503;
      res.set_content(ready_ ? "ready\n" : "not ready\n", "text/plain");
    });
    http_->Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(Metrics::Global().Render(), "text/plain; version=0.0.4");
    });
    auto colon = options_.http_address.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(options_.http_address.substr(colon + 1), &port) ||
        !http_->bind_to_port(options_.http_address.substr(0, colon).c_str(), port)) {
      return absl::UnavailableError(
          absl::StrCat("Cannot listen for HTTP on ", options_.http_address, "."));
    }
    http_thread_ = std::thread([this] { http_->listen_after_bind(); });
  }
  log::Info(
      "serving",
      {{"grpc", absl::StrCat(options_.grpc_address.substr(0, options_.grpc_address.rfind(':')), ":",
                             grpc_port_)},
       {"http", options_.http_address}});
  return absl::OkStatus();
}

void ServiceHost::SetReadiness(bool ready) {
  if (!options_.service_name.empty()) {
    server_->GetHealthCheckService()->SetServingStatus(options_.service_name, ready);
  }
  server_->GetHealthCheckService()->SetServingStatus("", ready);
}

void ServiceHost::ReadinessLoop() {
  while (!stopping_) {
    for (int i = 0; i < 10 && !stopping_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (stopping_) break;
    bool now = options_.ready ? options_.ready() : true;
    if (now != ready_.exchange(now)) {
      log::Info(now ? "ready" : "not ready");
      SetReadiness(now);
    }
  }
}

void ServiceHost::Wait() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  log::Info("shutting down", {{"signal", std::to_string(sig)}});
  Shutdown();
}

void ServiceHost::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (server_) server_->GetHealthCheckService()->SetServingStatus(false);
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  // After the drain, so that events of the last calls are still relayed.
  if (options_.on_shutdown) options_.on_shutdown();
  if (http_) http_->stop();
  if (http_thread_.joinable()) http_thread_.join();
  if (readiness_thread_.joinable()) readiness_thread_.join();
}

}  // namespace mci
