#include "services/templates/event_consumer.h"

#include <chrono>

#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/metrics.h"
#include "mci/events/v1/events.pb.h"
#include "services/templates/replica.h"

namespace mci::templates {
namespace {

constexpr int kBatch = 256;
constexpr int64_t kFetchTimeoutMs = 1000;
constexpr int64_t kRetryDelayMs = 1000;

// An event that changed the replica: from its making in the catalog (before its commit) to the
// replica's commit here; across hosts, their clocks' skew is in it. One the replica had already
// (a redelivery after a lost ack, a copy the relay sent again) is only counted: its "delay" would
// be the redelivery's wait, not the event's propagation.
void ObservePropagation(const mci::events::v1::MultiCloudImageEvent& event, bool changed,
                        absl::Time applied) {
  if (!changed) {
    Metrics::Global().AddCounter("mci_events_ignored_total", 1);
    return;
  }
  Metrics::Global().Observe("mci_event_propagation_seconds",
                            absl::ToDoubleSeconds(applied - EventTime(event)));
}

void Sleep(const std::atomic<bool>& stopping, int64_t ms) {
  for (int64_t waited = 0; waited < ms && !stopping; waited += 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

void EventConsumer::Start() {
  Metrics::Global().DeclareCounters({"mci_events_ignored_total"});
  thread_ = std::thread([this] { Run(); });
}

void EventConsumer::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (subscription_ != nullptr) {
    natsSubscription_Destroy(subscription_);
    subscription_ = nullptr;
  }
}

absl::Status EventConsumer::Subscribe() {
  if (absl::Status s = nats_->EnsureStream(kEventStream, {kEventSubjects}); !s.ok()) return s;
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = kEventStream;
  options.Config.Durable = kConsumerName;
  options.Config.AckPolicy = js_AckExplicit;
  options.Config.DeliverPolicy = js_DeliverAll;
  options.Config.AckWait = int64_t{30} * 1000 * 1000 * 1000;
  options.Config.MaxDeliver = -1;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_PullSubscribe(&subscription_, nats_->jetstream(), kEventSubjects, kConsumerName,
                                  nullptr, &options, &err);
  if (s != NATS_OK) {
    subscription_ = nullptr;
    return nats::ToStatus(s, "Cannot subscribe to MCI_EVENTS");
  }
  log::Info("consuming MCI events", {{"stream", kEventStream}, {"durable", kConsumerName}});
  return absl::OkStatus();
}

bool EventConsumer::Handle(natsMsg* msg) {
  mci::events::v1::MultiCloudImageEvent event;
  if (!event.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)) ||
      event.multi_cloud_image().empty()) {
    // Redelivering it would not make it parseable.
    log::Error("dropping an MCI event that cannot be parsed",
               {{"subject", natsMsg_GetSubject(msg)}});
    natsMsg_Term(msg, nullptr);
    return true;
  }
  absl::StatusOr<bool> changed = repository_->ApplyEvent(event);
  if (!changed.ok()) {
    log::Warn("cannot apply MCI event; it will be redelivered",
              {{"event_id", event.event_id()}, {"error", changed.status().ToString()}});
    natsMsg_NakWithDelay(msg, kRetryDelayMs, nullptr);
    return false;
  }
  ObservePropagation(event, *changed, absl::Now());
  natsStatus s = natsMsg_Ack(msg, nullptr);
  if (s != NATS_OK) {
    // Redelivered after the ack wait and ignored then by its sequence.
    log::Warn("cannot ack MCI event",
              {{"event_id", event.event_id()}, {"error", natsStatus_GetText(s)}});
  }
  log::Debug("applied MCI event", {{"event_id", event.event_id()},
                                   {"mci", event.multi_cloud_image()},
                                   {"sequence", std::to_string(event.sequence())}});
  return true;
}

bool EventConsumer::HandleBatch(const natsMsgList& list) {
  if (list.Count < 2) return false;
  std::vector<mci::events::v1::MultiCloudImageEvent> events(list.Count);
  for (int i = 0; i < list.Count; ++i) {
    if (!events[i].ParseFromArray(natsMsg_GetData(list.Msgs[i]),
                                  natsMsg_GetDataLength(list.Msgs[i])) ||
        events[i].multi_cloud_image().empty()) {
      return false;  // one by one, so the bad one is dropped alone
    }
  }
  // One transaction, and a few statements, for the whole batch: at 1,000 events/s a commit (or
  // a statement) per event falls behind.
  absl::StatusOr<std::vector<bool>> changed = repository_->ApplyEvents(events);
  if (!changed.ok()) {
    log::Warn("cannot apply a batch of MCI events; applying them one by one",
              {{"error", changed.status().ToString()}});
    return false;
  }
  const absl::Time applied = absl::Now();
  for (size_t i = 0; i < events.size(); ++i) {
    ObservePropagation(events[i], (*changed)[i], applied);
  }
  for (int i = 0; i < list.Count; ++i) {
    if (natsStatus s = natsMsg_Ack(list.Msgs[i], nullptr); s != NATS_OK) {
      log::Warn("cannot ack MCI event", {{"error", natsStatus_GetText(s)}});
    }
  }
  return true;
}

void EventConsumer::Run() {
  while (!stopping_) {
    if (subscription_ == nullptr) {
      if (absl::Status s = Subscribe(); !s.ok()) {
        log::Warn("MCI event consumer not subscribed yet", {{"error", s.ToString()}});
        Sleep(stopping_, kRetryDelayMs);
        continue;
      }
    }
    natsMsgList list{};
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&list, subscription_, kBatch, kFetchTimeoutMs, &err);
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      log::Debug("fetching MCI events failed", {{"error", natsStatus_GetText(s)}});
      if (s == NATS_INVALID_SUBSCRIPTION || s == NATS_CONNECTION_CLOSED || s == NATS_NOT_FOUND) {
        natsSubscription_Destroy(subscription_);
        subscription_ = nullptr;
      }
      Sleep(stopping_, 500);
      continue;
    }
    // Under a steady write load a fetch otherwise returns an event or two, each batch a replica
    // transaction (a commit flushed to disk) of its own.
    const auto gather = nats::GatherAfterFetch(list.Count, kBatch);
    if (HandleBatch(list)) {
      natsMsgList_Destroy(&list);
      std::this_thread::sleep_for(gather);
      continue;
    }
    bool ok = true;
    for (int i = 0; i < list.Count; ++i) {
      if (ok) {
        ok = Handle(list.Msgs[i]);
      } else {
        // Keep the stream order: the rest comes back after the failed one.
        natsMsg_NakWithDelay(list.Msgs[i], kRetryDelayMs, nullptr);
      }
    }
    natsMsgList_Destroy(&list);
    if (!ok) {
      Sleep(stopping_, kRetryDelayMs);
    } else {
      std::this_thread::sleep_for(gather);
    }
  }
}

}  // namespace mci::templates
