#include "libs/common/metrics.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mci {

Metrics& Metrics::Global() {
  static Metrics* metrics = new Metrics();
  return *metrics;
}

void Metrics::ObserveRpc(absl::string_view method, absl::StatusCode code, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = methods_.find(method);
  if (it == methods_.end()) it = methods_.emplace(std::string(method), Method{}).first;
  Method& m = it->second;
  ++m.counts[static_cast<int>(code)];
  ++m.total;
  m.sum += seconds;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++m.buckets[i];
  }
}

void Metrics::SetGauge(absl::string_view name, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[std::string(name)] = value;
}

std::string Metrics::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out =
      "# HELP mci_grpc_requests_total gRPC requests handled, by method and status code.\n"
      "# TYPE mci_grpc_requests_total counter\n";
  for (const auto& [name, m] : methods_) {
    for (const auto& [code, count] : m.counts) {
      absl::StrAppend(&out, "mci_grpc_requests_total{method=\"", name, "\",code=\"",
                      absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ", count,
                      "\n");
    }
  }
  out +=
      "# HELP mci_grpc_request_duration_seconds gRPC request latency, by method.\n"
      "# TYPE mci_grpc_request_duration_seconds histogram\n";
  for (const auto& [name, m] : methods_) {
    for (size_t i = 0; i < kBuckets.size(); ++i) {
      absl::StrAppend(&out, "mci_grpc_request_duration_seconds_bucket{method=\"", name, "\",le=\"",
                      kBuckets[i], "\"} ", m.buckets[i], "\n");
    }
    absl::StrAppend(&out, "mci_grpc_request_duration_seconds_bucket{method=\"", name,
                    "\",le=\"+Inf\"} ", m.total, "\n");
    absl::StrAppend(&out, "mci_grpc_request_duration_seconds_sum{method=\"", name, "\"} ", m.sum,
                    "\n");
    absl::StrAppend(&out, "mci_grpc_request_duration_seconds_count{method=\"", name, "\"} ",
                    m.total, "\n");
  }
  for (const auto& [name, value] : gauges_) {
    absl::StrAppend(&out, "# TYPE ", name, " gauge\n", name, " ", value, "\n");
  }
  return out;
}

}  // namespace mci
