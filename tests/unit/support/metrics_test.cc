// Metrics: what /metrics renders from ObserveRpc, including calls observed from many threads at
// once (the counters are atomics, without a lock on the call path), and from the services' own
// gauges, counters and histograms.
#include "libs/common/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mci {
namespace {

// The value of the line that starts with `series` (e.g. `name{labels}`), or "" when none does.
std::string Value(const std::string& rendered, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(rendered, '\n')) {
    if (absl::StartsWith(line, series + " ")) return std::string(line.substr(series.size() + 1));
  }
  return "";
}

TEST(MetricsTest, CountsByCodeAndCumulativeBuckets) {
  Metrics metrics;
  metrics.ObserveRpc("Get", absl::StatusCode::kOk, 0.00005);    // first bucket (0.0001)
  metrics.ObserveRpc("Get", absl::StatusCode::kOk, 0.0001);     // on a bound: that bucket
  metrics.ObserveRpc("Get", absl::StatusCode::kOk, 0.003);      // 0.005
  metrics.ObserveRpc("Get", absl::StatusCode::kNotFound, 2.0);  // above every bound: +Inf only
  const std::string out = metrics.Render();
  EXPECT_EQ(Value(out, R"(mci_grpc_requests_total{method="Get",code="OK"})"), "3") << out;
  EXPECT_EQ(Value(out, R"(mci_grpc_requests_total{method="Get",code="NOT_FOUND"})"), "1") << out;
  // Codes never seen are not rendered.
  EXPECT_FALSE(absl::StrContains(out, R"(code="INTERNAL")")) << out;
  const std::string bucket = R"(mci_grpc_request_duration_seconds_bucket{method="Get",le=")";
  EXPECT_EQ(Value(out, bucket + R"(0.0001"})"), "2") << out;
  EXPECT_EQ(Value(out, bucket + R"(0.0025"})"), "2") << out;
  EXPECT_EQ(Value(out, bucket + R"(0.005"})"), "3") << out;
  EXPECT_EQ(Value(out, bucket + R"(1"})"), "3") << out;
  EXPECT_EQ(Value(out, bucket + R"(+Inf"})"), "4") << out;
  EXPECT_EQ(Value(out, R"(mci_grpc_request_duration_seconds_count{method="Get"})"), "4") << out;
  EXPECT_EQ(Value(out, R"(mci_grpc_request_duration_seconds_sum{method="Get"})"), "2.00315") << out;
}

TEST(MetricsTest, NoCallLostAcrossThreads) {
  Metrics metrics;
  constexpr int kThreads = 8, kCalls = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      // Half the threads on one method, half each on a method of their own (first seen while
      // the others count: the map grows under the shared readers).
      const std::string method = t % 2 == 0 ? "Shared" : absl::StrCat("Own", t);
      for (int i = 0; i < kCalls; ++i) {
        metrics.ObserveRpc(
            method, i % 10 == 0 ? absl::StatusCode::kUnavailable : absl::StatusCode::kOk, 0.0002);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const std::string out = metrics.Render();
  const int shared = kThreads / 2 * kCalls;
  EXPECT_EQ(Value(out, R"(mci_grpc_requests_total{method="Shared",code="OK"})"),
            std::to_string(shared / 10 * 9))
      << out;
  EXPECT_EQ(Value(out, R"(mci_grpc_requests_total{method="Shared",code="UNAVAILABLE"})"),
            std::to_string(shared / 10))
      << out;
  EXPECT_EQ(Value(out, R"(mci_grpc_request_duration_seconds_bucket{method="Shared",le="0.00025"})"),
            std::to_string(shared))
      << out;
  for (int t = 1; t < kThreads; t += 2) {
    EXPECT_EQ(Value(out, absl::StrCat(R"(mci_grpc_request_duration_seconds_count{method="Own)", t,
                                      R"("})")),
              std::to_string(kCalls))
        << out;
  }
}

TEST(MetricsTest, GaugesAndCounters) {
  Metrics metrics;
  metrics.SetGauge("mci_outbox_backlog", 3);
  metrics.SetGauge("mci_outbox_backlog", 5);
  metrics.AddCounter("mci_refreshed_total", 2);
  metrics.AddCounter("mci_refreshed_total", 40);
  const std::string out = metrics.Render();
  EXPECT_TRUE(absl::StrContains(out, "# TYPE mci_outbox_backlog gauge\nmci_outbox_backlog 5\n"))
      << out;
  EXPECT_TRUE(
      absl::StrContains(out, "# TYPE mci_refreshed_total counter\nmci_refreshed_total 42\n"))
      << out;
}

// A declared counter is rendered at 0 before its first count, and counts on from there.
TEST(MetricsTest, DeclaredCountersStartAtZero) {
  Metrics metrics;
  metrics.DeclareCounters({"mci_misses_total", "mci_refreshed_total"});
  std::string out = metrics.Render();
  EXPECT_TRUE(absl::StrContains(out, "# TYPE mci_misses_total counter\nmci_misses_total 0\n"))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "\nmci_refreshed_total 0\n")) << out;
  metrics.AddCounter("mci_misses_total", 3);
  metrics.DeclareCounters({"mci_misses_total"});  // declaring again keeps the count
  out = metrics.Render();
  EXPECT_TRUE(absl::StrContains(out, "\nmci_misses_total 3\n")) << out;
}

TEST(MetricsTest, HistogramsOfTheServicesOwn) {
  Metrics metrics;
  metrics.Observe("mci_outbox_event_delay_seconds", 0.004);
  metrics.Observe("mci_outbox_event_delay_seconds", 0.02);
  metrics.Observe("mci_outbox_event_delay_seconds", 3);  // above every bound: +Inf only
  metrics.Observe("mci_outbox_relay_read_seconds", 0.0002);
  const std::string out = metrics.Render();
  EXPECT_TRUE(absl::StrContains(out, "# TYPE mci_outbox_event_delay_seconds histogram\n")) << out;
  const std::string bucket = R"(mci_outbox_event_delay_seconds_bucket{le=")";
  EXPECT_EQ(Value(out, bucket + R"(0.0025"})"), "0") << out;
  EXPECT_EQ(Value(out, bucket + R"(0.005"})"), "1") << out;
  EXPECT_EQ(Value(out, bucket + R"(0.025"})"), "2") << out;
  EXPECT_EQ(Value(out, bucket + R"(1"})"), "2") << out;
  EXPECT_EQ(Value(out, bucket + R"(+Inf"})"), "3") << out;
  EXPECT_EQ(Value(out, "mci_outbox_event_delay_seconds_count"), "3") << out;
  EXPECT_EQ(Value(out, "mci_outbox_event_delay_seconds_sum"), "3.024") << out;
  EXPECT_EQ(Value(out, "mci_outbox_relay_read_seconds_count"), "1") << out;
  EXPECT_EQ(Value(out, R"(mci_outbox_relay_read_seconds_bucket{le="0.00025"})"), "1") << out;
}

}  // namespace
}  // namespace mci
