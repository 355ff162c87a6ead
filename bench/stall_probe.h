#pragma once

// Stalls of the machine itself, told apart from the load under test: a thread at real-time
// priority sleeps 1 ms at a time and records each wake-up that comes late. Nothing of the bench's
// stack runs above it, so a late wake-up is time the machine did not run it (the hypervisor's
// steal, the kernel), not the services' or PostgreSQL's CPU.

#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace mci::bench {

// A span of wall-clock time (CLOCK_REALTIME, microseconds since the epoch: PostgreSQL's commit
// timestamps use the same clock).
struct Stall {
  int64_t from_us = 0;
  int64_t to_us = 0;
};

// The microseconds of `stalls` that fall within [from_us, to_us].
int64_t StalledWithin(const std::vector<Stall>& stalls, int64_t from_us, int64_t to_us);

class StallProbe {
 public:
  // Wake-ups later than `threshold` past their 1 ms sleep count as stalls.
  explicit StallProbe(absl::Duration threshold = absl::Milliseconds(5));
  ~StallProbe();
  StallProbe(const StallProbe&) = delete;
  StallProbe& operator=(const StallProbe&) = delete;

  void Stop();
  // Whether the thread got real-time priority (SCHED_FIFO needs root or CAP_SYS_NICE): without
  // it, a stall may also be the load's CPU contention.
  bool realtime() const;
  std::vector<Stall> stalls() const;
  // The span it watched, in seconds, and the time the hypervisor stole from all CPUs meanwhile
  // (/proc/stat), as a share of their time.
  double watched_seconds() const;
  double steal_share() const;

 private:
  void Loop();
  double WatchedSecondsLocked() const;  // mu_ held

  const absl::Duration threshold_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  bool stopped_set_ = false;
  bool realtime_ = false;
  std::vector<Stall> stalls_;
  absl::Time started_, stopped_;
  double steal0_ = 0, steal1_ = 0;
  std::thread thread_;
};

}  // namespace mci::bench
