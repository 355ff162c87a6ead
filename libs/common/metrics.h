#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mci {

// Per-method request counts (by status code) and latency histograms, rendered in the Prometheus
// text exposition format.
//
// ObserveRpc runs on every call, on gRPC's threads: it takes no exclusive lock once a method has
// been seen (a shared lock to find it, then relaxed atomic increments), so that threads finishing
// calls together do not pass through one mutex one at a time (not measurable on two cores, see
// docs/performance-history.md change 33; a ceiling with more).
class Metrics {
 public:
  static Metrics& Global();
  void ObserveRpc(absl::string_view method, absl::StatusCode code, double seconds);
  // A gauge set by the service (e.g. outbox backlog).
  void SetGauge(absl::string_view name, double value);
  // A counter of the service's own (e.g. cached answers refreshed); not for per-call paths.
  void AddCounter(absl::string_view name, uint64_t delta);
  // The counters a service keeps, rendered at 0 from now on rather than from their first count,
  // so that a rate or an alert over them has its series from the first scrape.
  void DeclareCounters(std::initializer_list<absl::string_view> names);
  // A histogram of the service's own, in seconds (e.g. the outbox relay's publishing), with the
  // calls' buckets; not for per-call paths.
  void Observe(absl::string_view name, double seconds);
  std::string Render() const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
  static constexpr int kCodes = 17;  // absl::StatusCode 0 (OK) to 16 (UNAUTHENTICATED)
  struct Histogram {
    // Observations that fall in (kBuckets[i-1], kBuckets[i]]; the last one, above every bound.
    // Render adds them up into Prometheus' cumulative buckets.
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};
    std::atomic<uint64_t> sum_nanos{0};
    void Add(double seconds);
    // Appends the series `name`_bucket, _sum and _count; `labels` ("method=\"X\"") or "".
    void Render(absl::string_view name, absl::string_view labels, std::string* out) const;
  };
  struct Method {
    std::array<std::atomic<uint64_t>, kCodes> counts{};  // by status code
    Histogram latency;
  };
  Method& MethodFor(absl::string_view method);

  mutable std::shared_mutex methods_mu_;
  // Never erased, so a Method found under the shared lock stays valid after it is released.
  std::map<std::string, std::unique_ptr<Method>, std::less<>> methods_;
  mutable std::mutex own_mu_;  // the service's own: gauges_, counters_ and histograms_
  std::map<std::string, double, std::less<>> gauges_;
  std::map<std::string, uint64_t, std::less<>> counters_;
  std::map<std::string, Histogram, std::less<>> histograms_;
};

}  // namespace mci
