#pragma once

#include <array>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mci {

// Per-method request counts (by status code) and latency histograms, rendered in the Prometheus
// text exposition format.
class Metrics {
 public:
  static Metrics& Global();
  void ObserveRpc(absl::string_view method, absl::StatusCode code, double seconds);
  // A gauge set by the service (e.g. outbox backlog).
  void SetGauge(absl::string_view name, double value);
  std::string Render() const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
  struct Method {
    std::map<int, uint64_t> counts;  // by status code
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t total = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Method, std::less<>> methods_;
  std::map<std::string, double, std::less<>> gauges_;
};

}  // namespace mci
