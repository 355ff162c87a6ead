#include "bench/load.h"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>

namespace mci::bench {
namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Run {
  const Issue* issue;
  std::atomic<bool> open{false};    // measured window open
  std::atomic<bool> closed{false};  // measured window over: stop issuing
  std::atomic<int64_t> measured{0};
  int64_t max_ops = 0;
  std::atomic<int> active{0};
  std::mutex mu;
  std::condition_variable cv;
  struct Slot {
    std::vector<double> ms;
    int64_t ok = 0, errors = 0;
    std::string first_error;
  };
  std::vector<Slot> slots;

  void Launch(int i) {
    Clock::time_point start = Clock::now();
    (*issue)(i, [this, i, start](const grpc::Status& status) {
      Clock::time_point end = Clock::now();
      Slot& slot = slots[i];
      if (open.load(std::memory_order_acquire) && !closed.load(std::memory_order_acquire)) {
        if (status.ok()) {
          ++slot.ok;
          slot.ms.push_back(Ms(end - start));
        } else {
          ++slot.errors;
          if (slot.first_error.empty()) {
            slot.first_error = std::to_string(status.error_code()) + ": " + status.error_message();
          }
        }
        if (max_ops > 0 && ++measured >= max_ops) closed = true;
      }
      if (!closed.load(std::memory_order_acquire)) {
        Launch(i);
      } else if (--active == 0) {
        std::lock_guard<std::mutex> lock(mu);
        cv.notify_all();
      }
    });
  }
};

}  // namespace

double Percentile(std::vector<double>& ms, double q) {
  if (ms.empty()) return 0;
  size_t k = std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())));
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(k), ms.end());
  return ms[k];
}

LoadResult RunLoad(const LoadOptions& options, const Issue& issue,
                   const std::function<void()>& window_start,
                   const std::function<void()>& window_end) {
  auto run = std::make_unique<Run>();
  run->issue = &issue;
  run->max_ops = options.max_ops;
  run->slots.resize(static_cast<size_t>(options.in_flight));
  for (auto& s : run->slots) s.ms.reserve(1 << 16);
  run->active = options.in_flight;
  for (int i = 0; i < options.in_flight; ++i) run->Launch(i);

  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup_s));
  if (window_start) window_start();
  Clock::time_point opened = Clock::now();
  run->open = true;
  {
    std::unique_lock<std::mutex> lock(run->mu);
    run->cv.wait_for(lock, std::chrono::duration<double>(options.duration_s),
                     [&] { return run->closed.load(); });
  }
  run->closed = true;
  Clock::time_point closed = Clock::now();
  if (window_end) window_end();
  {
    std::unique_lock<std::mutex> lock(run->mu);
    // Operations in flight finish (each has a deadline); a stuck one is given up after 30 s.
    if (!run->cv.wait_for(lock, std::chrono::seconds(30),
                          [&] { return run->active.load() == 0; })) {
      std::fprintf(stderr, "[bench] %d operations still in flight after 30 s\n",
                   run->active.load());
      run.release();  // callbacks may still touch it
      return LoadResult{};
    }
  }
  LoadResult r;
  std::vector<double> all;
  for (auto& s : run->slots) {
    r.ok += s.ok;
    r.errors += s.errors;
    if (r.first_error.empty()) r.first_error = s.first_error;
    all.insert(all.end(), s.ms.begin(), s.ms.end());
  }
  r.seconds = std::chrono::duration<double>(closed - opened).count();
  r.qps = r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
  if (!all.empty()) {
    r.mean_ms = std::accumulate(all.begin(), all.end(), 0.0) / static_cast<double>(all.size());
    r.p50_ms = Percentile(all, 0.50);
    r.p99_ms = Percentile(all, 0.99);
    r.p999_ms = Percentile(all, 0.999);
  }
  r.samples = std::move(all);
  return r;
}

void Merge(LoadResult* total, const LoadResult& more) {
  total->ok += more.ok;
  total->errors += more.errors;
  if (total->first_error.empty()) total->first_error = more.first_error;
  total->seconds += more.seconds;
  total->qps = total->seconds > 0 ? static_cast<double>(total->ok) / total->seconds : 0;
  total->samples.insert(total->samples.end(), more.samples.begin(), more.samples.end());
  std::vector<double> all = total->samples;
  if (!all.empty()) {
    total->mean_ms = std::accumulate(all.begin(), all.end(), 0.0) / static_cast<double>(all.size());
    total->p50_ms = Percentile(all, 0.50);
    total->p99_ms = Percentile(all, 0.99);
    total->p999_ms = Percentile(all, 0.999);
  }
}

CompletionQueues::CompletionQueues(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    cqs_.push_back(std::make_unique<grpc::CompletionQueue>());
  }
  for (auto& cq : cqs_) {
    threads_.emplace_back([q = cq.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<AsyncCall*>(tag)->Complete(ok);
    });
  }
}

CompletionQueues::~CompletionQueues() {
  for (auto& cq : cqs_) cq->Shutdown();
  for (auto& t : threads_) t.join();
}

std::vector<std::shared_ptr<grpc::Channel>> Connections(const std::string& address, int n) {
  std::vector<std::shared_ptr<grpc::Channel>> out;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("mci.bench.channel", i);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto ch = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
    out.push_back(ch);
  }
  return out;
}

RawUnary::RawUnary(CompletionQueues* cqs,
                   const std::vector<std::shared_ptr<grpc::Channel>>& channels, std::string method,
                   const std::vector<std::string>& requests, std::string bearer, Order order)
    : cqs_(cqs),
      method_(std::move(method)),
      bearer_(std::move(bearer)),
      order_(order),
      calls_(1024) {
  // Refused here rather than failed per call: a call that completes inside Start would have
  // RunLoad start the next one inside it, and so on down the stack.
  if (requests.empty() || channels.empty()) {
    throw std::invalid_argument("RawUnary " + method_ + ": no requests or no channels");
  }
  for (const auto& ch : channels) stubs_.push_back(std::make_unique<grpc::GenericStub>(ch));
  for (const std::string& r : requests) {
    grpc::Slice slice(r);
    requests_.emplace_back(&slice, 1);
  }
}

void RawUnary::Start(int slot, Done done) {
  thread_local std::mt19937 rng{std::random_device{}()};
  const auto s = static_cast<size_t>(slot);
  Pending& c = calls_.at(s);
  c.reader.reset();  // lives in the previous call's arena, which the context owns
  c.ctx = std::make_unique<grpc::ClientContext>();
  c.ctx->AddMetadata("authorization", bearer_);
  c.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  c.done = std::move(done);
  const size_t index = order_ == Order::kInOrder
                           ? next_.fetch_add(1, std::memory_order_relaxed) % requests_.size()
                           : rng() % requests_.size();
  const grpc::ByteBuffer& request = requests_[index];
  c.reader =
      stubs_[s % stubs_.size()]->PrepareUnaryCall(c.ctx.get(), method_, request, cqs_->at(s));
  c.reader->StartCall();
  c.reader->Finish(&c.response, &c.status, static_cast<AsyncCall*>(&c));
}

void RawUnary::Pending::Complete(bool ok) {
  grpc::Status result =
      ok ? status : grpc::Status(grpc::StatusCode::UNKNOWN, "the call did not complete");
  response.Clear();
  Done d = std::move(done);
  d(result);  // may start the slot's next call, which reuses this Pending
}

PacedLoad::PacedLoad(double rate, int max_in_flight, Issue issue)
    : rate_(rate), max_in_flight_(max_in_flight), issue_(std::move(issue)) {}

PacedLoad::~PacedLoad() { Stop(); }

void PacedLoad::Start() {
  started_ = Clock::now();
  thread_ = std::thread([this] {
    const auto interval =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_));
    Clock::time_point next = Clock::now();
    int slot = 0;
    while (!stopping_) {
      next += interval;
      if (in_flight_.load() >= max_in_flight_) {
        ++skipped_;
      } else {
        ++in_flight_;
        issue_(slot++ % max_in_flight_, [this](const grpc::Status& s) {
          if (s.ok()) {
            ++ok_;
          } else {
            ++errors_;
          }
          --in_flight_;
        });
      }
      std::this_thread::sleep_until(next);
    }
  });
}

void PacedLoad::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  thread_.join();
  stopped_ = Clock::now();
  for (int i = 0; i < 3000 && in_flight_.load() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

double PacedLoad::achieved_rate() const {
  Clock::time_point end = thread_.joinable() ? Clock::now() : stopped_;
  double s = std::chrono::duration<double>(end - started_).count();
  return s > 0 ? static_cast<double>(ok_.load()) / s : 0;
}

}  // namespace mci::bench
