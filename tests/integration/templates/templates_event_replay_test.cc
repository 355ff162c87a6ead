// The replica of MCI state fed by MCI_EVENTS: duplicate and out-of-order deliveries leave it
// unchanged. Events are published straight to JetStream for an MCI the catalog does not know, so
// everything the template-reference service says about it comes from its replica.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/common/nats.h"
#include "mci/events/v1/events.pb.h"
#include "tests/integration/templates/helpers.h"
#include "tests/support/stack.h"

namespace mci::templates::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using Event = mci::events::v1::MultiCloudImageEvent;

constexpr char kReplayAccount[] = "replay";
constexpr char kEast[] = "clouds/aws-us-east-1";
constexpr char kWest[] = "clouds/aws-us-west-1";
constexpr char kGoogle[] = "clouds/google-us-central1";

class EventReplayTest : public ::testing::Test {
 protected:
  EventReplayTest()
      : stack_(mci::testing::Stack::Options{.catalog = true, .templates = true}),
        clients_(stack_.Channel(stack_.catalog_address()),
                 stack_.Channel(stack_.templates_address())) {}

  void SetUp() override {
    ASSERT_TRUE(stack_.status().ok()) << stack_.status();
    auto client = mci::nats::Client::Connect(stack_.nats().Url(), "event-replay-test");
    ASSERT_TRUE(client.ok()) << client.status();
    nats_ = *std::move(client);
    ASSERT_TRUE(Eventually([&] { return nats_->connected(); }, absl::Seconds(10)));
    ASSERT_TRUE(nats_->EnsureStream("MCI_EVENTS", {"mci.v1.events.>"}).ok());
  }

  static Event MakeEvent(const std::string& mci, Event::Type type, int64_t sequence,
                         std::vector<std::string> head_clouds,
                         std::vector<std::pair<int64_t, std::vector<std::string>>> revisions = {}) {
    Event e;
    e.set_event_id(absl::StrCat(mci, "#", sequence, "#", ++counter_));
    e.set_type(type);
    e.set_multi_cloud_image(mci);
    e.set_account(kReplayAccount);
    e.set_sequence(sequence);
    *e.mutable_event_time() =
        google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(absl::Now()));
    e.set_state(type == Event::DELETED            ? Event::STATE_DELETED
                : type == Event::DELETION_STARTED ? Event::STATE_DELETING
                                                  : Event::STATE_ACTIVE);
    for (const auto& c : head_clouds) e.add_head_clouds(c);
    for (const auto& [n, clouds] : revisions) {
      auto* r = e.add_revisions();
      r->set_revision(n);
      for (const auto& c : clouds) r->add_clouds(c);
    }
    e.set_display_name("Replayed");
    return e;
  }

  // Every publish gets a fresh Nats-Msg-Id, so JetStream's own de-duplication does not hide a
  // redelivery from the consumer: the consumer itself must ignore it.
  void Publish(const Event& e) {
    static const char* kSubjects[] = {
        "",          "created",          "updated",          "settings_changed", "tags_changed",
        "committed", "deletion_started", "deletion_aborted", "deleted"};
    absl::Status s =
        nats_->Publish(absl::StrCat("mci.v1.events.", kSubjects[e.type()]), e.SerializeAsString(),
                       absl::StrCat(e.event_id(), "-pub"), absl::Seconds(5));
    ASSERT_TRUE(s.ok()) << s;
  }

  std::vector<std::string> SupportedClouds(const std::string& tmpl) {
    tpb::ListSupportedCloudsRequest req;
    req.set_name(tmpl);
    tpb::ListSupportedCloudsResponse resp;
    grpc::Status s = clients_.templates().ListSupportedClouds(
        Context(Observer(kReplayAccount)).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.clouds().begin(), resp.clouds().end()};
  }

  std::string CreateTemplate(const std::string& id) {
    tpb::CreateServerTemplateRequest req;
    req.set_parent(absl::StrCat("accounts/", kReplayAccount));
    req.set_server_template_id(id);
    req.mutable_server_template()->set_display_name(id);
    tpb::ServerTemplate t;
    grpc::Status s =
        clients_.templates().CreateServerTemplate(Context(Designer(kReplayAccount)).get(), req, &t);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return t.name();
  }

  grpc::Status Add(const std::string& tmpl, const std::string& mci) {
    return clients_.Add(tmpl, mci, false, nullptr, Designer(kReplayAccount));
  }

  static inline int counter_ = 0;
  mci::testing::Stack stack_;
  Clients clients_;
  std::unique_ptr<mci::nats::Client> nats_;
};

TEST_F(EventReplayTest, DuplicateAndOutOfOrderDeliveriesLeaveTheReplicaUnchanged) {
  const std::string ghost = MciName("ghost", kReplayAccount);
  Publish(MakeEvent(ghost, Event::CREATED, 1, {}));
  Publish(MakeEvent(ghost, Event::SETTINGS_CHANGED, 2, {kEast}));
  Publish(MakeEvent(ghost, Event::COMMITTED, 3, {kEast, kWest}, {{1, {kEast}}}));

  std::string tmpl = CreateTemplate("replayed");
  // The catalog has never heard of "ghost": only the replica can make these succeed.
  ASSERT_TRUE(Eventually([&] { return Add(tmpl, ghost).ok(); }, absl::Seconds(20)));
  ASSERT_TRUE(Eventually([&] { return SupportedClouds(tmpl).size() == 2; }, absl::Seconds(20)));
  ASSERT_TRUE(Add(tmpl, ghost + "@1").ok());
  std::vector<std::string> before = SupportedClouds(tmpl);
  EXPECT_THAT(before, ElementsAre(kEast, kWest));

  // Redeliveries of applied events, and older states arriving late, including a stale delete.
  Publish(MakeEvent(ghost, Event::COMMITTED, 3, {kEast, kWest}, {{1, {kEast}}}));
  Publish(MakeEvent(ghost, Event::SETTINGS_CHANGED, 2, {kEast}));
  Publish(MakeEvent(ghost, Event::CREATED, 1, {}));
  Publish(MakeEvent(ghost, Event::SETTINGS_CHANGED, 2, {kGoogle}));
  Publish(MakeEvent(ghost, Event::DELETION_STARTED, 3, {kEast, kWest}));
  Publish(MakeEvent(ghost, Event::DELETED, 2, {}));
  // Events are applied in stream order: once this one shows, all the above were consumed.
  const std::string sentinel = MciName("sentinel", kReplayAccount);
  Publish(MakeEvent(sentinel, Event::CREATED, 1, {kGoogle}));
  std::string probe = CreateTemplate("probe");
  ASSERT_TRUE(Eventually([&] { return Add(probe, sentinel).ok(); }, absl::Seconds(20)));

  EXPECT_EQ(SupportedClouds(tmpl), before);
  tpb::ServerTemplate t;
  tpb::GetServerTemplateRequest get;
  get.set_name(tmpl);
  ASSERT_TRUE(clients_.templates()
                  .GetServerTemplate(Context(Observer(kReplayAccount)).get(), get, &t)
                  .ok());
  ASSERT_EQ(t.multi_cloud_images_size(), 2);
  EXPECT_THAT(t.multi_cloud_images(0).clouds(), ElementsAre(kEast, kWest));
  EXPECT_THAT(t.multi_cloud_images(1).clouds(), ElementsAre(kEast));
  // Not deleted, not being deleted: still referenceable.
  std::string again = CreateTemplate("again");
  EXPECT_TRUE(Add(again, ghost).ok());

  // The next event in order is applied.
  Publish(MakeEvent(ghost, Event::SETTINGS_CHANGED, 4, {kGoogle}, {{1, {kEast}}}));
  EXPECT_TRUE(Eventually(
      [&] {
        auto clouds = SupportedClouds(tmpl);
        return clouds == std::vector<std::string>{kEast, kGoogle};
      },
      absl::Seconds(20)));
}

// A deletion event tombstones the MCI; a later CREATED of a new MCI under the same name (its
// sequence starts again at 1) brings it back.
TEST_F(EventReplayTest, TombstoneAndRecreationUnderTheSameName) {
  const std::string name = MciName("phoenix", kReplayAccount);
  Publish(MakeEvent(name, Event::CREATED, 1, {kEast}));
  std::string tmpl = CreateTemplate("phoenix-user");
  ASSERT_TRUE(Eventually([&] { return Add(tmpl, name).ok(); }, absl::Seconds(20)));
  tpb::RemoveMultiCloudImageRequest remove;
  remove.set_server_template(tmpl);
  remove.set_multi_cloud_image(name);
  tpb::ServerTemplate t;
  ASSERT_TRUE(clients_.templates()
                  .RemoveMultiCloudImage(Context(Designer(kReplayAccount)).get(), remove, &t)
                  .ok());
  Publish(MakeEvent(name, Event::DELETION_STARTED, 2, {kEast}));
  Publish(MakeEvent(name, Event::DELETED, 3, {}));
  // Unknown to the catalog as well, so NOT_FOUND once the tombstone is in.
  ASSERT_TRUE(
      Eventually([&] { return Add(tmpl, name).error_code() == grpc::StatusCode::NOT_FOUND; },
                 absl::Seconds(20)));
  // A stale redelivery does not bring it back, and is counted as ignored rather than timed as a
  // propagation (its "delay" would be the redelivery's).
  auto ignored = [&] {
    return mci::testing::MetricsValue(stack_.templates_http_address(), "mci_events_ignored_total");
  };
  const double ignored_before = ignored();
  Publish(MakeEvent(name, Event::SETTINGS_CHANGED, 2, {kEast}));
  const std::string sentinel = MciName("phoenix-sentinel", kReplayAccount);
  Publish(MakeEvent(sentinel, Event::CREATED, 1, {kGoogle}));
  std::string probe = CreateTemplate("phoenix-probe");
  ASSERT_TRUE(Eventually([&] { return Add(probe, sentinel).ok(); }, absl::Seconds(20)));
  EXPECT_EQ(Add(tmpl, name).error_code(), grpc::StatusCode::NOT_FOUND);
  // Counted just after the consumer's commit, which the answer above may precede.
  EXPECT_TRUE(Eventually([&] { return ignored() >= ignored_before + 1; }, absl::Seconds(5)))
      << ignored() << " ignored, " << ignored_before << " before";
  // A new MCI of that name: its sequence starts again at 1.
  Publish(MakeEvent(name, Event::CREATED, 1, {kWest}));
  grpc::Status last;
  ASSERT_TRUE(Eventually([&] { return (last = Add(tmpl, name)).ok(); }, absl::Seconds(20)))
      << last.error_code() << " " << last.error_message();
  EXPECT_THAT(SupportedClouds(tmpl), UnorderedElementsAre(kWest));
}

// End to end through the real catalog's outbox relay: a setting added in the catalog reaches the
// replica (the replica row exists, so only the event can tell).
TEST_F(EventReplayTest, CatalogEventsReachTheReplica) {
  std::string mci = clients_.CreateMci("evented", {kEast});
  std::string tmpl = clients_.CreateTemplate("evented-user");
  ASSERT_TRUE(clients_.Add(tmpl, mci).ok());
  cpb::CreateMultiCloudImageSettingRequest req;
  req.set_parent(mci);
  *req.mutable_setting() = SettingFor(kWest);
  cpb::MultiCloudImageSetting setting;
  ASSERT_TRUE(clients_.catalog()
                  .CreateMultiCloudImageSetting(Context(Designer()).get(), req, &setting)
                  .ok());
  tpb::ListSupportedCloudsRequest list;
  list.set_name(tmpl);
  EXPECT_TRUE(Eventually(
      [&] {
        tpb::ListSupportedCloudsResponse resp;
        return clients_.templates()
                   .ListSupportedClouds(Context(Observer()).get(), list, &resp)
                   .ok() &&
               resp.clouds_size() == 2;
      },
      absl::Seconds(20)))
      << "the catalog's SETTINGS_CHANGED event did not reach the template-reference replica";
  // Each handled event is in /metrics (observed just after the replica's commit, so maybe after
  // the answer above): SETTINGS_CHANGED's propagation timed; CREATED's too, or counted as
  // ignored when AddMultiCloudImage's read of the catalog had put its state in the replica first.
  auto metric = [&](const std::string& series) {
    return mci::testing::MetricsValue(stack_.templates_http_address(), series);
  };
  EXPECT_TRUE(Eventually(
      [&] {
        const double timed = metric("mci_event_propagation_seconds_count");
        return timed >= 1 && timed + metric("mci_events_ignored_total") >= 2;
      },
      absl::Seconds(5)))
      << metric("mci_event_propagation_seconds_count") << " timed, "
      << metric("mci_events_ignored_total") << " ignored";
}

// The service's counters are in /metrics at 0 before anything happened, so that a rate or an
// alert over them has a series from the first scrape.
TEST_F(EventReplayTest, CountersAreInMetricsFromTheStart) {
  for (const char* counter : {"mci_events_ignored_total", "mci_launch_cache_misses_total",
                              "mci_launch_cache_refreshed_total"}) {
    EXPECT_TRUE(mci::testing::MetricsHas(stack_.templates_http_address(), counter)) << counter;
    EXPECT_EQ(mci::testing::MetricsValue(stack_.templates_http_address(), counter), 0) << counter;
  }
  for (const char* counter : {"mci_resolve_cache_misses_total", "mci_resolve_cache_refreshed_total",
                              "mci_get_cache_misses_total", "mci_get_cache_refreshed_total"}) {
    EXPECT_TRUE(mci::testing::MetricsHas(stack_.catalog_http_address(), counter)) << counter;
  }
}

// A NATS outage makes the service NOT_SERVING and only delays events: the durable consumer picks
// up what the catalog published meanwhile.
TEST_F(EventReplayTest, NatsOutageOnlyDelaysEvents) {
  std::string mci = clients_.CreateMci("outage", {kEast});
  std::string tmpl = clients_.CreateTemplate("outage-user");
  ASSERT_TRUE(clients_.Add(tmpl, mci).ok());
  const std::string service = "mci.templates.v1.ServerTemplateService";
  auto serving = [&](int want) {
    auto health = mci::testing::HealthCheck(stack_.templates_address(), service);
    return health.ok() && *health == want;
  };
  nats_.reset();
  stack_.nats().Stop();
  EXPECT_TRUE(Eventually([&] { return serving(2); }, absl::Seconds(20)))
      << "still SERVING without NATS";
  // The catalog keeps the change in its outbox until NATS is back.
  cpb::CreateMultiCloudImageSettingRequest req;
  req.set_parent(mci);
  *req.mutable_setting() = SettingFor(kWest);
  cpb::MultiCloudImageSetting setting;
  ASSERT_TRUE(clients_.catalog()
                  .CreateMultiCloudImageSetting(Context(Designer()).get(), req, &setting)
                  .ok());
  stack_.nats().Start();
  EXPECT_TRUE(Eventually([&] { return serving(1); }, absl::Seconds(30)));
  tpb::ListSupportedCloudsRequest list;
  list.set_name(tmpl);
  EXPECT_TRUE(Eventually(
      [&] {
        tpb::ListSupportedCloudsResponse resp;
        return clients_.templates()
                   .ListSupportedClouds(Context(Observer()).get(), list, &resp)
                   .ok() &&
               resp.clouds_size() == 2;
      },
      absl::Seconds(30)))
      << "the event published after the outage did not reach the replica";
}

}  // namespace
}  // namespace mci::templates::testing
