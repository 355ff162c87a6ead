#pragma once

// A closed-loop load generator over gRPC's asynchronous (completion-queue) client API:
// `in_flight` operations are kept outstanding; each completion starts the next one on the same
// slot.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mci::bench {

using Clock = std::chrono::steady_clock;
// Called exactly once when an operation ends (the status of its last call).
using Done = std::function<void(const grpc::Status&)>;
// Starts one operation on `slot` (0..in_flight-1) without blocking.
using Issue = std::function<void(int slot, Done done)>;

struct LoadOptions {
  int in_flight = 16;
  double warmup_s = 1;
  double duration_s = 5;
  // Stops early after this many measured operations (0: no limit).
  int64_t max_ops = 0;
};

struct LoadResult {
  int64_t ok = 0;
  int64_t errors = 0;
  std::string first_error;
  double seconds = 0;  // length of the measured window
  double qps = 0;      // successful operations per second in the window
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, mean_ms = 0;
  // Every successful operation's latency (ms), for merging runs.
  std::vector<double> samples;
};

// Adds `more` (another window of the same scenario) to `total` and recomputes its statistics.
void Merge(LoadResult* total, const LoadResult& more);

// Runs the load. `window_start` and `window_end` are called at the edges of the measured window
// (after the warm-up), e.g. to sample the servers' CPU time.
LoadResult RunLoad(const LoadOptions& options, const Issue& issue,
                   const std::function<void()>& window_start = nullptr,
                   const std::function<void()>& window_end = nullptr);

// Percentiles (0..1) of latencies in ms; sorts `ms`.
double Percentile(std::vector<double>& ms, double q);

// gRPC's completion-queue API, each queue drained by a thread of its own, which runs each
// completion there and then. The bench's calls all go through it (not the callback API, whose
// completions gRPC hands from its poller to threads of its own: with those threads in the
// process, a thread hop per call, and ~50% more client CPU per echo call measured here).
// A call's tag is an AsyncCall*, completed once.
class AsyncCall {
 public:
  virtual ~AsyncCall() = default;
  virtual void Complete(bool ok) = 0;
};

class CompletionQueues {
 public:
  explicit CompletionQueues(int threads);
  ~CompletionQueues();  // every call started on them must have completed
  CompletionQueues(const CompletionQueues&) = delete;
  CompletionQueues& operator=(const CompletionQueues&) = delete;
  size_t size() const { return cqs_.size(); }
  grpc::CompletionQueue* at(size_t i) const { return cqs_[i % cqs_.size()].get(); }
  grpc::CompletionQueue* any() { return at(next_++); }

 private:
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
};

// `n` channels to `address`, each its own TCP connection (distinct arguments and a local
// subchannel pool), each waited for up to 10 s.
std::vector<std::shared_ptr<grpc::Channel>> Connections(const std::string& address, int n);

// A typed unary call on `cqs`: `prepare(ctx, request, cq)` is the stub's PrepareAsync method;
// `then(status, reply)` runs on the queue's thread.
template <typename Req, typename Resp, typename ThenFn>
struct CallState : AsyncCall {
  grpc::ClientContext ctx;
  Req req;
  Resp resp;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;  // in the call's arena
  ThenFn then;
  explicit CallState(ThenFn t) : then(std::move(t)) {}
  void Complete(bool ok) override {
    if (!ok) status = grpc::Status(grpc::StatusCode::UNKNOWN, "the call did not complete");
    then(status, resp);
    delete this;
  }
};

template <typename Req, typename Resp, typename PrepareFn, typename ThenFn>
void Unary(CompletionQueues* cqs, const std::string& bearer, Req req, PrepareFn prepare,
           ThenFn then) {
  auto* c = new CallState<Req, Resp, ThenFn>(std::move(then));
  c->req = std::move(req);
  c->ctx.AddMetadata("authorization", bearer);
  c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  c->reader = prepare(&c->ctx, c->req, cqs->any());
  c->reader->StartCall();
  c->reader->Finish(&c->resp, &c->status, static_cast<AsyncCall*>(c));
}

// Unary calls of one method with requests serialized once, up front (each call picks one of them
// at random), and answers left as bytes (only their status is looked at): the least work per call
// a client on gRPC's C++ API can do, as an outside client such as ghz does. The read rows and
// their echo baselines use it, so that the client's share of the two shared cores is as small as
// it can be.
class RawUnary {
 public:
  // Which request a call sends: one drawn at random, or the next in the list (cycling), so that
  // as many calls as requests send each once (a pass over a scenario's requests that refills
  // the caches they hit).
  enum class Order { kRandom, kInOrder };
  // `method` as on the wire: "/package.Service/Method". Calls carry `authorization: bearer`.
  // Throws std::invalid_argument without requests or channels.
  RawUnary(CompletionQueues* cqs, const std::vector<std::shared_ptr<grpc::Channel>>& channels,
           std::string method, const std::vector<std::string>& requests, std::string bearer,
           Order order = Order::kRandom);
  RawUnary(const RawUnary&) = delete;
  RawUnary& operator=(const RawUnary&) = delete;

  // Starts a call on slot `s` (0..1023), which uses channel s % channels and completion queue
  // s % queues and has one call at a time; `done` runs on that queue's thread. An Issue.
  void Start(int slot, Done done);

 private:
  struct Pending : AsyncCall {
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
    grpc::ByteBuffer response;
    grpc::Status status;
    Done done;
    void Complete(bool ok) override;
  };

  CompletionQueues* cqs_;
  std::string method_, bearer_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::vector<grpc::ByteBuffer> requests_;
  Order order_;
  std::atomic<size_t> next_{0};  // kInOrder: the next request's index
  std::deque<Pending> calls_;
};

// An open-loop background load: `rate` operations per second, at most `max_in_flight` at once
// (operations that would exceed it are skipped and counted).
class PacedLoad {
 public:
  PacedLoad(double rate, int max_in_flight, Issue issue);
  ~PacedLoad();
  void Start();
  void Stop();  // waits for the operations in flight
  int64_t completed() const { return ok_.load() + errors_.load(); }
  int64_t ok() const { return ok_.load(); }
  int64_t errors() const { return errors_.load(); }
  int64_t skipped() const { return skipped_.load(); }
  double achieved_rate() const;

 private:
  double rate_;
  int max_in_flight_;
  Issue issue_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int64_t> ok_{0}, errors_{0}, skipped_{0};
  Clock::time_point started_, stopped_;
};

}  // namespace mci::bench
