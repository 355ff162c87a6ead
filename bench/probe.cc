// mci-bench-probe: the bench client's own cost per call against an echo server at ADDRESS (pid
// PID): QPS, the client's CPU per call and the server's. With a sixth argument, one call through
// the callback API first, which starts gRPC's callback threads in the process (they then compete
// with the completion-queue threads for the poller: docs/performance-history.md, "How it
// measures").
// Usage: mci-bench-probe ADDRESS PID [in_flight] [completion-queue threads] [seconds] [cb]
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "bench/load.h"
#include "bench/procstat.h"
#include "mci/bench/v1/echo.grpc.pb.h"

using namespace mci::bench;  // NOLINT

static double SelfCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::string address = argv[1];
  pid_t pid = std::atoi(argv[2]);
  int in_flight = argc > 3 ? std::atoi(argv[3]) : 16;
  int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  double seconds = argc > 5 ? std::atof(argv[5]) : 3;
  if (pid <= 0 || in_flight < 1 || in_flight > 1024 || threads < 1 || seconds <= 0) {
    std::fprintf(stderr,
                 "usage: mci-bench-probe ADDRESS PID [in_flight 1..1024] [threads] "
                 "[seconds] [cb]\n");
    return 2;
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels = Connections(address, 4);
  mci::bench::v1::EchoRequest req;
  req.set_payload(std::string(400, 'r'));
  req.set_response_bytes(400);
  if (argc > 6) {
    auto stub = mci::bench::v1::EchoService::NewStub(channels[0]);
    grpc::ClientContext ctx;
    mci::bench::v1::EchoResponse resp;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    stub->async()->Echo(&ctx, &req, &resp, [&](grpc::Status) {
      std::lock_guard<std::mutex> l(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
  }
  CompletionQueues cqs(threads);
  RawUnary raw(&cqs, channels, "/mci.bench.v1.EchoService/Echo", {req.SerializeAsString()},
               "Bearer x");
  LoadOptions o;
  o.in_flight = in_flight;
  o.warmup_s = 1;
  o.duration_s = seconds;
  double c0 = 0, s0 = 0, c1 = 0, s1 = 0;
  LoadResult r = RunLoad(
      o, [&](int slot, Done d) { raw.Start(slot, std::move(d)); },
      [&] {
        c0 = SelfCpu();
        s0 = CpuSeconds(pid);
      },
      [&] {
        c1 = SelfCpu();
        s1 = CpuSeconds(pid);
      });
  std::printf(
      "in_flight %d threads %d: %.0f/s p50 %.3f p99 %.3f client %.1f us/call server %.1f us/call\n",
      in_flight, threads, r.qps, r.p50_ms, r.p99_ms, (c1 - c0) / r.ok * 1e6,
      (s1 - s0) / r.ok * 1e6);
}
