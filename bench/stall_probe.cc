#include "bench/stall_probe.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <condition_variable>

#include "absl/time/clock.h"
#include "bench/procstat.h"

namespace mci::bench {
namespace {

int64_t Micros(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000 + t.tv_nsec / 1000;
}

}  // namespace

int64_t StalledWithin(const std::vector<Stall>& stalls, int64_t from_us, int64_t to_us) {
  int64_t total = 0;
  for (const Stall& s : stalls) {
    const int64_t lo = std::max(s.from_us, from_us), hi = std::min(s.to_us, to_us);
    if (hi > lo) total += hi - lo;
  }
  return total;
}

StallProbe::StallProbe(absl::Duration threshold)
    : threshold_(threshold), started_(absl::Now()), steal0_(StealSeconds()) {
  std::unique_lock<std::mutex> lock(mu_);
  bool ready = false;
  std::condition_variable cv;
  thread_ = std::thread([&] {
    sched_param param{};
    param.sched_priority = 10;
    const bool realtime = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param) == 0;
    {
      // Notified under the lock: the constructor, and `cv` with it, cannot end before.
      std::lock_guard<std::mutex> l(mu_);
      realtime_ = realtime;
      ready = true;
      cv.notify_one();
    }
    Loop();
  });
  cv.wait(lock, [&] { return ready; });
}

StallProbe::~StallProbe() { Stop(); }

void StallProbe::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = absl::Now();
  steal1_ = StealSeconds();
  stopped_set_ = true;
}

void StallProbe::Loop() {
  const int64_t late_us = absl::ToInt64Microseconds(threshold_);
  int64_t prev_mono = Micros(CLOCK_MONOTONIC), prev_wall = Micros(CLOCK_REALTIME);
  const timespec sleep{0, 1000000};
  while (true) {
    nanosleep(&sleep, nullptr);
    const int64_t mono = Micros(CLOCK_MONOTONIC), wall = Micros(CLOCK_REALTIME);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) break;
    // Late by the gap less the 1 ms asked for; the stall is the span after the sleep should
    // have ended.
    if (mono - prev_mono - 1000 > late_us) stalls_.push_back({prev_wall + 1000, wall});
    prev_mono = mono;
    prev_wall = wall;
  }
}

bool StallProbe::realtime() const {
  std::lock_guard<std::mutex> lock(mu_);
  return realtime_;
}

std::vector<Stall> StallProbe::stalls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stalls_;
}

double StallProbe::watched_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return WatchedSecondsLocked();
}

double StallProbe::WatchedSecondsLocked() const {
  return absl::ToDoubleSeconds((stopped_set_ ? stopped_ : absl::Now()) - started_);
}

double StallProbe::steal_share() const {
  std::lock_guard<std::mutex> lock(mu_);
  const double span = WatchedSecondsLocked();
  const double steal = (stopped_set_ ? steal1_ : StealSeconds()) - steal0_;
  return span > 0 ? steal / (span * Cpus()) : 0;
}

}  // namespace mci::bench
