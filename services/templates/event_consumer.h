#pragma once

// Feeds the MCI replica from the MCI_EVENTS JetStream stream: a durable pull consumer, each event
// applied in one transaction and acked only after it committed.

#include <nats/nats.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "libs/common/nats.h"
#include "services/templates/repository.h"

namespace mci::templates {

inline constexpr char kEventStream[] = "MCI_EVENTS";
inline constexpr char kEventSubjects[] = "mci.v1.events.>";
inline constexpr char kConsumerName[] = "template-reference";

class EventConsumer {
 public:
  EventConsumer(nats::Client* nats, Repository* repository)
      : nats_(nats), repository_(repository) {}
  ~EventConsumer() { Stop(); }
  EventConsumer(const EventConsumer&) = delete;
  EventConsumer& operator=(const EventConsumer&) = delete;

  void Start();
  void Stop();

 private:
  void Run();
  absl::Status Subscribe();
  // false when the rest of the batch must wait for a redelivery (the database is down).
  bool Handle(natsMsg* msg);
  // Applies and acks a fetched batch in one transaction; false when it must go one by one.
  bool HandleBatch(const natsMsgList& list);

  nats::Client* nats_;
  Repository* repository_;
  natsSubscription* subscription_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace mci::templates
