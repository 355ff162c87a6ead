#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "libs/common/nats.h"
#include "services/marketplace/repository.h"

namespace mci::marketplace {

inline constexpr char kEventsStream[] = "MCI_EVENTS";
inline constexpr char kEventsSubjects[] = "mci.v1.events.>";
inline constexpr char kLineageDurable[] = "marketplace-lineage";

// A catalog event payload (mci.events.v1.MultiCloudImageEvent) as a lineage change.
absl::StatusOr<LineageEvent> ParseLineageEvent(absl::string_view payload);

// Follows every MCI's origin across accounts (which a caller's token cannot list) from the
// catalog's events: a durable pull consumer, each event applied in its own transaction and acked
// only after it committed; replays are ignored by the per-MCI sequence.
class LineageConsumer {
 public:
  LineageConsumer(nats::Client* nats, Repository* repository)
      : nats_(nats), repository_(repository) {}
  ~LineageConsumer() { Stop(); }

  void Start();
  void Stop();

 private:
  void Run();
  // Fetches and applies batches until stopped or the subscription fails.
  void Consume(natsSubscription* subscription);
  // Applies a fetched batch in one go; false when it holds an unreadable event or fails, and the
  // caller then takes it one by one.
  bool ApplyBatch(const natsMsgList& list);

  nats::Client* nats_;
  Repository* repository_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace mci::marketplace
