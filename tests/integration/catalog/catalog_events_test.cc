// MCI_EVENTS as a consumer sees them: every change, in order, exactly once, across NATS outages
// and catalog restarts (transactional outbox + relay).
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <map>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "mci/events/v1/events.pb.h"
#include "tests/integration/catalog/catalog_client.h"
#include "tests/support/stack.h"

namespace mci::testing {
namespace {

using Event = mci::events::v1::MultiCloudImageEvent;
using Stub = cpb::CatalogService::Stub;
using R = auth::Role;

// Reads the whole stream from the start with an ephemeral JetStream consumer. The catalog's relay
// creates the stream when it starts leading, which may be just after a test's first write: until
// the stream exists, Collect tries again to subscribe.
class StreamReader {
 public:
  explicit StreamReader(const std::string& url) {
    natsOptions* opts = nullptr;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, url.c_str());
    status_ = natsConnection_Connect(&conn_, opts);
    natsOptions_Destroy(opts);
    if (status_ == NATS_OK) status_ = natsConnection_JetStream(&js_, conn_, nullptr);
    if (status_ == NATS_OK) Subscribe();
  }
  ~StreamReader() {
    if (sub_ != nullptr) natsSubscription_Destroy(sub_);
    if (js_ != nullptr) jsCtx_Destroy(js_);
    if (conn_ != nullptr) natsConnection_Destroy(conn_);
  }
  // Connected to NATS (the stream may not exist yet).
  bool ok() const { return status_ == NATS_OK; }
  // Events of `mci` until `count` arrived or `timeout` passed.
  std::vector<Event> Collect(const std::string& mci, size_t count, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (ok() && events_[mci].size() < count && absl::Now() < deadline) {
      if (sub_ == nullptr && !Subscribe()) {
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      natsMsg* msg = nullptr;
      if (natsSubscription_NextMsg(&msg, sub_, 200) != NATS_OK) continue;
      Event e;
      if (e.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg))) {
        e.set_event_id(absl::StrCat(e.event_id(), "|", natsMsg_GetSubject(msg)));
        events_[e.multi_cloud_image()].push_back(e);
      }
      natsMsg_Destroy(msg);
    }
    return events_[mci];
  }

 private:
  bool Subscribe() {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "MCI_EVENTS";
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.AckPolicy = js_AckNone;
    jsErrCode err;
    if (js_SubscribeSync(&sub_, js_, "mci.v1.events.>", nullptr, &so, &err) == NATS_OK) {
      return true;
    }
    sub_ = nullptr;
    return false;
  }

  natsStatus status_ = NATS_OK;
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::map<std::string, std::vector<Event>> events_;
};

class CatalogEventsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(stack_.status().ok()) << stack_.status(); }
  CatalogClient Client(const std::string& account) {
    return CatalogClient(stack_.Channel(stack_.catalog_address()),
                         Token(account, {R::kDesigner, R::kLibrary}));
  }
  // Creates MCI `id` and waits until `reader` saw its first event.
  void CreateSeen(CatalogClient& c, StreamReader& reader, const std::string& id,
                  const std::string& display_name, cpb::MultiCloudImage* mci) {
    *mci = c.Create(id, display_name);
    ASSERT_TRUE(reader.ok());
    ASSERT_EQ(reader.Collect(mci->name(), 1, absl::Seconds(20)).size(), 1u);
  }
  Stack stack_{Stack::Options{}};
};

void ExpectInOrder(const std::vector<Event>& events) {
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1)) << "event " << i;
  }
}

TEST_F(CatalogEventsTest, ConsumerSeesEveryChangeInOrder) {
  CatalogClient c = Client("events");
  cpb::MultiCloudImage mci = c.Create("events", "Evented");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  ASSERT_TRUE(c.Tag(mci.name(), "provides:rs_agent_type=right_link").ok());
  cpb::UpdateMultiCloudImageRequest update;
  update.mutable_multi_cloud_image()->set_name(mci.name());
  update.mutable_multi_cloud_image()->set_display_name("Evented v2");
  update.mutable_update_mask()->add_paths("display_name");
  cpb::MultiCloudImage out;
  ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImage, update, &out).ok());
  c.Commit(mci.name(), "one");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-west-1", "centos-5-4-i386-v5-6", "m1.small").ok());

  StreamReader reader(stack_.nats().Url());
  ASSERT_TRUE(reader.ok());
  std::vector<Event> events = reader.Collect(mci.name(), 6, absl::Seconds(20));
  ASSERT_EQ(events.size(), 6u);
  ExpectInOrder(events);
  // The relay's times in /metrics: a read and a publishing per batch, a delay per event (counted
  // just after JetStream's ack, which may be after the reader's delivery).
  const std::string http = stack_.catalog_http_address();
  EXPECT_TRUE(
      Eventually([&] { return MetricsValue(http, "mci_outbox_event_delay_seconds_count") >= 6; },
                 absl::Seconds(5)));
  EXPECT_GE(MetricsValue(http, "mci_outbox_relay_read_seconds_count"), 1);
  EXPECT_GE(MetricsValue(http, "mci_outbox_relay_publish_seconds_count"), 1);
  EXPECT_GT(MetricsValue(http, "mci_outbox_event_delay_seconds_sum"), 0);
  std::vector<Event::Type> types;
  for (const auto& e : events) types.push_back(e.type());
  EXPECT_EQ(types,
            (std::vector<Event::Type>{Event::CREATED, Event::SETTINGS_CHANGED, Event::TAGS_CHANGED,
                                      Event::UPDATED, Event::COMMITTED, Event::SETTINGS_CHANGED}));
  EXPECT_NE(events[0].event_id().find("|mci.v1.events.created"), std::string::npos);
  // Each event carries the state a consumer needs.
  const Event& committed = events[4];
  EXPECT_EQ(committed.revision(), 1);
  ASSERT_EQ(committed.revisions_size(), 1);
  EXPECT_EQ(committed.revisions(0).clouds(0), "clouds/aws-us-east-1");
  EXPECT_EQ(events[5].head_clouds_size(), 2);
  EXPECT_EQ(events[5].state(), Event::STATE_ACTIVE);
  EXPECT_EQ(events[5].account(), "events");
  EXPECT_EQ(events[5].origin_kind(), "CREATED");
  EXPECT_EQ(events[5].lineage(), mci.name());
  // And the relay deletes what it published (the last batch's rows with its next read), rather
  // than leaving JetStream's de-duplication to hide that it publishes them again and again.
  pqxx::connection pg(stack_.postgres().Url("catalog"));
  int64_t left = -1;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(20))) {
    pqxx::nontransaction n(pg);
    left = n.exec1("SELECT count(*) FROM outbox")[0].as<int64_t>();
    if (left == 0) break;
  }
  EXPECT_EQ(left, 0);
}

// Update, AddTags and RemoveTags answer from what their transaction read under the row lock and
// build their event from it, without reading the MCI back (BeginInfoEdit/CommitInfoEdit): the
// answer must be what a read gives after the commit, and the event must carry the MCI's clouds
// (HEAD's and each revision's) and the next sequence, as the other events do.
TEST_F(CatalogEventsTest, InfoEditsAnswerAndAnnounceTheMciAsCommitted) {
  CatalogClient c = Client("edits");
  cpb::MultiCloudImage mci = c.Create("edits", "Edited", "first");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-west-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  c.Commit(mci.name(), "one");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-eu-west-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  ASSERT_TRUE(c.Tag(mci.name(), "provides:a=1").ok());
  const cpb::MultiCloudImage before = c.Get(mci.name());

  std::vector<cpb::MultiCloudImage> answers(3);
  cpb::UpdateMultiCloudImageRequest update;
  update.mutable_multi_cloud_image()->set_name(mci.name());
  update.mutable_multi_cloud_image()->set_display_name("Edited v2");
  update.mutable_multi_cloud_image()->set_description("second");
  update.mutable_multi_cloud_image()->set_etag(before.etag());
  ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImage, update, &answers[0]).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(answers[0], c.Get(mci.name())))
      << answers[0].DebugString() << " vs " << c.Get(mci.name()).DebugString();
  EXPECT_NE(answers[0].etag(), before.etag());
  EXPECT_EQ(answers[0].description(), "second");
  EXPECT_EQ(answers[0].settings_size(), 3);
  cpb::AddTagsRequest add;
  add.set_name(mci.name());
  add.add_tags("provides:b=2");
  add.add_tags("provides:0=0");
  ASSERT_TRUE(c.Call(&Stub::AddTags, add, &answers[1]).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(answers[1], c.Get(mci.name())))
      << answers[1].DebugString() << " vs " << c.Get(mci.name()).DebugString();
  EXPECT_EQ(answers[1].tags_size(), 3);
  cpb::RemoveTagsRequest remove;
  remove.set_name(mci.name());
  remove.add_tags("provides:a=1");
  ASSERT_TRUE(c.Call(&Stub::RemoveTags, remove, &answers[2]).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(answers[2], c.Get(mci.name())))
      << answers[2].DebugString() << " vs " << c.Get(mci.name()).DebugString();
  // The answer's etag is current: an update that sends it lands.
  update.mutable_multi_cloud_image()->set_etag(answers[2].etag());
  update.mutable_multi_cloud_image()->set_display_name("Edited v3");
  cpb::MultiCloudImage last;
  ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImage, update, &last).ok());

  StreamReader reader(stack_.nats().Url());
  ASSERT_TRUE(reader.ok());
  // CREATED, 2 × SETTINGS_CHANGED, COMMITTED, SETTINGS_CHANGED, TAGS_CHANGED, then the edits.
  std::vector<Event> events = reader.Collect(mci.name(), 10, absl::Seconds(20));
  ASSERT_EQ(events.size(), 10u);
  ExpectInOrder(events);
  const std::vector<std::string> head = {"clouds/aws-eu-west-1", "clouds/aws-us-east-1",
                                         "clouds/aws-us-west-1"};
  const std::vector<Event::Type> types = {Event::UPDATED, Event::TAGS_CHANGED, Event::TAGS_CHANGED,
                                          Event::UPDATED};
  const std::vector<std::string> names = {"Edited v2", "Edited v2", "Edited v2", "Edited v3"};
  for (size_t i = 0; i < 4; ++i) {
    const Event& e = events[6 + i];
    SCOPED_TRACE(e.DebugString());
    EXPECT_EQ(e.type(), types[i]);
    EXPECT_EQ(e.display_name(), names[i]);
    EXPECT_EQ(std::vector<std::string>(e.head_clouds().begin(), e.head_clouds().end()), head);
    ASSERT_EQ(e.revisions_size(), 1);
    EXPECT_EQ(e.revisions(0).revision(), 1);
    EXPECT_EQ(
        std::vector<std::string>(e.revisions(0).clouds().begin(), e.revisions(0).clouds().end()),
        (std::vector<std::string>{"clouds/aws-us-east-1", "clouds/aws-us-west-1"}));
    EXPECT_EQ(e.state(), Event::STATE_ACTIVE);
    EXPECT_EQ(e.lineage(), mci.name());
  }
}

// An info edit that waited for the row lock while a setting changed must announce the settings
// as that change left them: its read comes after the lock, in a snapshot of its own. Tags and
// settings change concurrently; in sequence order, a TAGS_CHANGED event's clouds are those of
// the event before it.
TEST_F(CatalogEventsTest, InfoEditsAfterAConcurrentSettingChangeSeeIt) {
  CatalogClient c = Client("races");
  cpb::MultiCloudImage mci = c.Create("races", "Raced");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  constexpr int kRounds = 40;
  std::thread settings([&] {
    CatalogClient s = Client("races");
    for (int i = 0; i < kRounds; ++i) {
      if (i % 2 == 0) {
        EXPECT_TRUE(
            s.AddSetting(mci.name(), "aws-us-west-1", "centos-5-4-i386-v5-6", "m1.small").ok());
      } else {
        cpb::DeleteMultiCloudImageSettingRequest req;
        req.set_name(mci.name() + "/settings/aws-us-west-1");
        google::protobuf::Empty out;
        EXPECT_TRUE(s.Call(&Stub::DeleteMultiCloudImageSetting, req, &out).ok());
      }
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(c.Tag(mci.name(), absl::StrCat("n:i=", i)).ok()) << i;
  }
  settings.join();
  StreamReader reader(stack_.nats().Url());
  ASSERT_TRUE(reader.ok());
  std::vector<Event> events = reader.Collect(mci.name(), 2 + 2 * kRounds, absl::Seconds(30));
  ASSERT_EQ(events.size(), static_cast<size_t>(2 + 2 * kRounds));
  ExpectInOrder(events);
  auto clouds = [](const Event& e) {
    return std::vector<std::string>(e.head_clouds().begin(), e.head_clouds().end());
  };
  int tagged = 0;
  for (size_t i = 1; i < events.size(); ++i) {
    if (events[i].type() != Event::TAGS_CHANGED) continue;
    ++tagged;
    EXPECT_EQ(clouds(events[i]), clouds(events[i - 1])) << "event " << i;
  }
  EXPECT_EQ(tagged, kRounds);
}

TEST_F(CatalogEventsTest, NatsOutageDelaysButLosesNothing) {
  CatalogClient c = Client("outage");
  cpb::MultiCloudImage mci = c.Create("outage", "Through the outage");
  {
    StreamReader reader(stack_.nats().Url());
    ASSERT_EQ(reader.Collect(mci.name(), 1, absl::Seconds(20)).size(), 1u);
  }
  const std::string http = stack_.catalog_http_address();
  const std::string within_half_second = R"(mci_outbox_event_delay_seconds_bucket{le="0.5"})";
  ASSERT_TRUE(
      Eventually([&] { return MetricsValue(http, "mci_outbox_event_delay_seconds_count") >= 1; },
                 absl::Seconds(5)));
  const double quick_before = MetricsValue(http, within_half_second);
  const double count_before = MetricsValue(http, "mci_outbox_event_delay_seconds_count");
  stack_.nats().Stop();
  for (int i = 1; i < 100; ++i) {
    ASSERT_TRUE(c.Tag(mci.name(), absl::StrCat("n:i=", i)).ok()) << i;
  }
  absl::SleepFor(absl::Seconds(1));
  stack_.nats().Start();
  StreamReader reader(stack_.nats().Url());
  ASSERT_TRUE(reader.ok());
  std::vector<Event> events = reader.Collect(mci.name(), 100, absl::Seconds(60));
  ASSERT_EQ(events.size(), 100u);
  ExpectInOrder(events);
  // The delay counts from each event's write, so the outage is in it: every event written during
  // it waited more than the second slept (none in the 0.5 s bucket), each counted once acked.
  EXPECT_TRUE(Eventually(
      [&] {
        return MetricsValue(http, "mci_outbox_event_delay_seconds_count") >= count_before + 99;
      },
      absl::Seconds(5)));
  EXPECT_EQ(MetricsValue(http, within_half_second), quick_before);
  // Nothing arrives twice.
  EXPECT_EQ(reader.Collect(mci.name(), 101, absl::Seconds(2)).size(), 100u);
}

// A NATS server that keeps its connections but stops answering (frozen: as a stalled server or a
// network dropping packets looks to a client): the relay's pipelined batch gets no acks within its
// 2 s, starts a fresh JetStream context and publishes the batch again one by one. Once the server
// answers again, every event is in the stream once and in order (JetStream drops the copies by
// their Nats-Msg-Id), and the relay publishes on as before.
TEST_F(CatalogEventsTest, ANatsThatStopsAnsweringDelaysButLosesNothing) {
  CatalogClient c = Client("stall");
  StreamReader reader(stack_.nats().Url());
  cpb::MultiCloudImage mci;
  ASSERT_NO_FATAL_FAILURE(CreateSeen(c, reader, "stall", "Through the stall", &mci));
  const std::string http = stack_.catalog_http_address();
  const char kTimeouts[] = "mci_outbox_relay_publish_timeouts_total";
  EXPECT_EQ(MetricsValue(http, kTimeouts), 0);
  stack_.nats().Freeze();
  for (int i = 1; i <= 30; ++i) {
    ASSERT_TRUE(c.Tag(mci.name(), absl::StrCat("n:i=", i)).ok()) << i;
  }
  // The first write's event goes out alone (and times out), the rest as one pipelined batch.
  const bool timed_out =
      Eventually([&] { return MetricsValue(http, kTimeouts) >= 1; }, absl::Seconds(20));
  stack_.nats().Thaw();
  ASSERT_TRUE(timed_out);
  std::vector<Event> events = reader.Collect(mci.name(), 31, absl::Seconds(60));
  ASSERT_EQ(events.size(), 31u);
  ExpectInOrder(events);
  // After the reset, the relay's new context publishes the next writes.
  for (int i = 31; i <= 40; ++i) ASSERT_TRUE(c.Tag(mci.name(), absl::StrCat("n:i=", i)).ok());
  events = reader.Collect(mci.name(), 41, absl::Seconds(20));
  ASSERT_EQ(events.size(), 41u);
  ExpectInOrder(events);
  // Nothing arrives twice.
  EXPECT_EQ(reader.Collect(mci.name(), 42, absl::Seconds(2)).size(), 41u);
}

TEST_F(CatalogEventsTest, CatalogRestartResumesRelay) {
  CatalogClient c = Client("restart");
  cpb::MultiCloudImage mci = c.Create("restart", "Across restarts");
  stack_.nats().Stop();
  for (int i = 1; i < 20; ++i) ASSERT_TRUE(c.Tag(mci.name(), absl::StrCat("n:i=", i)).ok());
  stack_.catalog()->Kill();  // events wait in the outbox
  stack_.nats().Start();
  stack_.catalog()->Restart();
  ASSERT_TRUE(stack_.catalog()->WaitServing(stack_.catalog_address(), absl::Seconds(30)).ok());
  StreamReader reader(stack_.nats().Url());
  std::vector<Event> events = reader.Collect(mci.name(), 20, absl::Seconds(60));
  ASSERT_EQ(events.size(), 20u);
  ExpectInOrder(events);
  EXPECT_EQ(reader.Collect(mci.name(), 21, absl::Seconds(2)).size(), 20u);
}

// The relay's deletes of what it relayed do not wait for their commit's flush (a delete lost in a
// crash only relays its event again): before, every event behind a slow flush waited with it. A
// synchronous standby that never comes stands in for the slow flush: it holds every synchronous
// commit, so a relay that waited would never see its delete done.
TEST_F(CatalogEventsTest, RelayDeletesWithoutWaitingForTheFlush) {
  CatalogClient c = Client("flush");
  StreamReader reader(stack_.nats().Url());
  cpb::MultiCloudImage mci;
  ASSERT_NO_FATAL_FAILURE(CreateSeen(c, reader, "flush", "Before the stall", &mci));
  pqxx::connection pg(stack_.postgres().Url("catalog"));
  pqxx::nontransaction n(pg);
  // New sessions of the catalog's database commit synchronously (the tests' cluster runs with
  // synchronous_commit=off on its command line, which a database's setting outranks), and a
  // synchronous commit now waits for the absent standby. The catalog's sessions, the relay's
  // among them, are ended so that they start again as such sessions.
  n.exec0("ALTER DATABASE catalog SET synchronous_commit = on");
  n.exec0("ALTER SYSTEM SET synchronous_standby_names = 'mci_absent_standby'");
  n.exec("SELECT pg_reload_conf()");
  n.exec0("SET synchronous_commit = local");  // this session's own writes do not wait
  n.exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
      " WHERE datname = 'catalog' AND pid <> pg_backend_pid()");
  // An event written straight into the outbox, as the catalog's writes would (they would now
  // wait for the standby themselves).
  Event event;
  const std::string name = "accounts/flush/multiCloudImages/written-during-the-stall";
  event.set_multi_cloud_image(name);
  event.set_account("flush");
  event.set_type(Event::UPDATED);
  event.set_sequence(1);
  n.exec_params0("INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3)",
                 "flush-stall-1", "mci.v1.events.updated",
                 absl::Base64Escape(event.SerializeAsString()));
  EXPECT_EQ(reader.Collect(name, 1, absl::Seconds(20)).size(), 1u);
  // Published, then deleted with the relay's next read, which did not wait for the standby.
  int64_t left = -1;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(20))) {
    left = n.exec1("SELECT count(*) FROM outbox")[0].as<int64_t>();
    if (left == 0) break;
  }
  EXPECT_EQ(left, 0);
  n.exec0("ALTER SYSTEM RESET synchronous_standby_names");
  n.exec("SELECT pg_reload_conf()");
}

}  // namespace
}  // namespace mci::testing
