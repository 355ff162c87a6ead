#include "libs/common/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace mci {

Metrics& Metrics::Global() {
  static Metrics* metrics = new Metrics();
  return *metrics;
}

Metrics::Method& Metrics::MethodFor(absl::string_view method) {
  {
    std::shared_lock<std::shared_mutex> lock(methods_mu_);
    auto it = methods_.find(method);
    if (it != methods_.end()) return *it->second;
  }
  std::unique_lock<std::shared_mutex> lock(methods_mu_);
  auto& slot = methods_[std::string(method)];
  if (slot == nullptr) slot = std::make_unique<Method>();
  return *slot;
}

void Metrics::Histogram::Add(double seconds) {
  const size_t bucket =
      std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin();
  buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  const double nanos = std::max(0.0, seconds) * 1e9;
  sum_nanos.fetch_add(static_cast<uint64_t>(std::llround(nanos)), std::memory_order_relaxed);
}

void Metrics::Histogram::Render(absl::string_view name, absl::string_view labels,
                                std::string* out) const {
  // The buckets are read one by one while observations go on, so the cumulative counts are each
  // monotonic but may be a few apart from one another (as any scrape of live counters).
  const std::string before_le = labels.empty() ? "" : absl::StrCat(labels, ",");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += buckets[i].load(std::memory_order_relaxed);
    absl::StrAppend(out, name, "_bucket{", before_le, "le=\"", kBuckets[i], "\"} ", cumulative,
                    "\n");
  }
  cumulative += buckets[kBuckets.size()].load(std::memory_order_relaxed);
  absl::StrAppend(out, name, "_bucket{", before_le, "le=\"+Inf\"} ", cumulative, "\n");
  const std::string braced = labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(out, name, "_sum", braced, " ",
                  static_cast<double>(sum_nanos.load(std::memory_order_relaxed)) / 1e9, "\n");
  absl::StrAppend(out, name, "_count", braced, " ", cumulative, "\n");
}

void Metrics::ObserveRpc(absl::string_view method, absl::StatusCode code, double seconds) {
  Method& m = MethodFor(method);
  const int c = static_cast<int>(code);
  m.counts[c >= 0 && c < kCodes ? c : static_cast<int>(absl::StatusCode::kUnknown)].fetch_add(
      1, std::memory_order_relaxed);
  m.latency.Add(seconds);
}

void Metrics::SetGauge(absl::string_view name, double value) {
  std::lock_guard<std::mutex> lock(own_mu_);
  gauges_[std::string(name)] = value;
}

void Metrics::AddCounter(absl::string_view name, uint64_t delta) {
  std::lock_guard<std::mutex> lock(own_mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) it = counters_.emplace(std::string(name), 0).first;
  it->second += delta;
}

void Metrics::DeclareCounters(std::initializer_list<absl::string_view> names) {
  for (absl::string_view name : names) AddCounter(name, 0);
}

void Metrics::Observe(absl::string_view name, double seconds) {
  std::lock_guard<std::mutex> lock(own_mu_);
  auto it = histograms_.find(name);
  if (it == histograms_.end()) it = histograms_.try_emplace(std::string(name)).first;
  it->second.Add(seconds);
}

std::string Metrics::Render() const {
  std::string out =
      "# HELP mci_grpc_requests_total gRPC requests handled, by method and status code.\n"
      "# TYPE mci_grpc_requests_total counter\n";
  std::shared_lock<std::shared_mutex> lock(methods_mu_);
  for (const auto& [name, m] : methods_) {
    for (int code = 0; code < kCodes; ++code) {
      const uint64_t count = m->counts[code].load(std::memory_order_relaxed);
      if (count == 0) continue;
      absl::StrAppend(&out, "mci_grpc_requests_total{method=\"", name, "\",code=\"",
                      absl::StatusCodeToString(static_cast<absl::StatusCode>(code)), "\"} ", count,
                      "\n");
    }
  }
  out +=
      "# HELP mci_grpc_request_duration_seconds gRPC request latency, by method.\n"
      "# TYPE mci_grpc_request_duration_seconds histogram\n";
  for (const auto& [name, m] : methods_) {
    m->latency.Render("mci_grpc_request_duration_seconds", absl::StrCat("method=\"", name, "\""),
                      &out);
  }
  lock.unlock();
  std::lock_guard<std::mutex> own_lock(own_mu_);
  for (const auto& [name, value] : gauges_) {
    absl::StrAppend(&out, "# TYPE ", name, " gauge\n", name, " ", value, "\n");
  }
  for (const auto& [name, value] : counters_) {
    absl::StrAppend(&out, "# TYPE ", name, " counter\n", name, " ", value, "\n");
  }
  for (const auto& [name, histogram] : histograms_) {
    absl::StrAppend(&out, "# TYPE ", name, " histogram\n");
    histogram.Render(name, "", &out);
  }
  return out;
}

}  // namespace mci
