#include "services/marketplace/lineage_consumer.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "libs/common/log.h"
#include "mci/events/v1/events.pb.h"
#include "services/marketplace/names.h"

namespace mci::marketplace {
namespace {

constexpr int kBatch = 64;
constexpr int64_t kFetchWaitMs = 1000;

void Pause(const std::atomic<bool>& stopping, std::chrono::milliseconds total) {
  for (auto waited = std::chrono::milliseconds(0); waited < total && !stopping;
       waited += std::chrono::milliseconds(100)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

absl::StatusOr<LineageEvent> ParseLineageEvent(absl::string_view payload) {
  events::v1::MultiCloudImageEvent event;
  if (!event.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::InvalidArgumentError("The event is not an mci.events.v1.MultiCloudImageEvent.");
  }
  auto name = ParseMultiCloudImageName(event.multi_cloud_image(), "multi_cloud_image");
  if (!name.ok()) return name.status();
  if (event.sequence() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("The event for ", event.multi_cloud_image(), " carries no sequence."));
  }
  LineageEvent out;
  out.multi_cloud_image = name->Head();
  out.account = name->account;
  out.lineage = event.lineage();
  out.origin_kind = event.origin_kind();
  out.origin_source = event.origin_source();
  out.sequence = event.sequence();
  out.deleted = event.type() == events::v1::MultiCloudImageEvent::DELETED ||
                event.state() == events::v1::MultiCloudImageEvent::STATE_DELETED;
  return out;
}

void LineageConsumer::Start() {
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void LineageConsumer::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void LineageConsumer::Run() {
  while (!stopping_) {
    if (!nats_->connected()) {
      Pause(stopping_, std::chrono::milliseconds(250));
      continue;
    }
    absl::Status stream = nats_->EnsureStream(kEventsStream, {kEventsSubjects});
    if (!stream.ok()) {
      log::Warn("cannot ensure the events stream", {{"error", stream.ToString()}});
      Pause(stopping_, std::chrono::seconds(1));
      continue;
    }
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = kEventsStream;
    options.Config.AckPolicy = js_AckExplicit;
    options.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription* subscription = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_PullSubscribe(&subscription, nats_->jetstream(), kEventsSubjects,
                                    kLineageDurable, nullptr, &options, &err);
    if (s != NATS_OK) {
      log::Warn("cannot subscribe to the events stream",
                {{"error", nats::ToStatus(s, "js_PullSubscribe").ToString()}});
      Pause(stopping_, std::chrono::seconds(1));
      continue;
    }
    log::Info("consuming MCI events", {{"durable", kLineageDurable}});
    Consume(subscription);
    natsSubscription_Destroy(subscription);
  }
}

bool LineageConsumer::ApplyBatch(const natsMsgList& list) {
  if (list.Count < 2) return false;
  std::vector<LineageEvent> events;
  for (int i = 0; i < list.Count; ++i) {
    auto event = ParseLineageEvent(absl::string_view(
        natsMsg_GetData(list.Msgs[i]), static_cast<size_t>(natsMsg_GetDataLength(list.Msgs[i]))));
    if (!event.ok()) return false;
    events.push_back(*std::move(event));
  }
  absl::Status applied = repository_->ApplyLineageEvents(events);
  if (!applied.ok()) {
    log::Warn("cannot apply a batch of events; applying them one by one",
              {{"error", applied.ToString()}});
    return false;
  }
  for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
  return true;
}

void LineageConsumer::Consume(natsSubscription* subscription) {
  int failures = 0;
  while (!stopping_) {
    natsMsgList list{};
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&list, subscription, kBatch, kFetchWaitMs, &err);
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      // Transient while NATS reconnects; a subscription that keeps failing is made afresh.
      if (++failures >= 5) return;
      Pause(stopping_, std::chrono::milliseconds(500));
      continue;
    }
    failures = 0;
    // Under a steady write load each fetch would otherwise return an event or two, each batch
    // a transaction of its own.
    const auto gather = nats::GatherAfterFetch(list.Count, kBatch);
    if (ApplyBatch(list)) {
      natsMsgList_Destroy(&list);
      std::this_thread::sleep_for(gather);
      continue;
    }
    // One by one: the unreadable ones are dropped and the failing ones redelivered alone.
    bool backoff = false;
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* msg = list.Msgs[i];
      auto event = ParseLineageEvent(
          absl::string_view(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg))));
      if (!event.ok()) {
        // Redelivering a malformed event would not make it readable.
        log::Error("dropping unreadable event",
                   {{"subject", natsMsg_GetSubject(msg)},
                    {"bytes", std::to_string(natsMsg_GetDataLength(msg))},
                    {"error", event.status().ToString()}});
        natsMsg_Ack(msg, nullptr);
        continue;
      }
      absl::Status applied = repository_->ApplyLineageEvent(*event);
      if (applied.ok()) {
        natsMsg_Ack(msg, nullptr);
      } else {
        log::Warn("cannot apply event; it will be redelivered",
                  {{"multi_cloud_image", event->multi_cloud_image}, {"error", applied.ToString()}});
        natsMsg_Nak(msg, nullptr);
        backoff = true;
      }
    }
    natsMsgList_Destroy(&list);
    if (backoff) {
      Pause(stopping_, std::chrono::seconds(1));
    } else {
      std::this_thread::sleep_for(gather);
    }
  }
}

}  // namespace mci::marketplace
