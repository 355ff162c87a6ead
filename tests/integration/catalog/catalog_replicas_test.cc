// Two catalog replicas on one database: one outbox relay at a time, events neither lost nor
// doubled, and each replica's resolve cache follows the other's writes through MCI_EVENTS.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "mci/events/v1/events.pb.h"
#include "tests/integration/catalog/catalog_client.h"
#include "tests/support/stack.h"

namespace mci::testing {
namespace {

using Stub = cpb::CatalogService::Stub;
using R = auth::Role;

TEST(CatalogReplicasTest, GetFollowsOwnWritesAtOnceAndTheOtherReplicasByEvents) {
  Stack stack(Stack::Options{});
  ASSERT_TRUE(stack.status().ok()) << stack.status();
  std::string second_address = absl::StrCat("127.0.0.1:", FreePort());
  ServiceProcess second(
      "catalog-replica", MCI_BIN_DIR "/services/catalog/catalog-service",
      {"--grpc-address=" + second_address, absl::StrCat("--http-address=127.0.0.1:", FreePort()),
       "--database-url=" + stack.postgres().Url("catalog"), "--nats-url=" + stack.nats().Url(),
       std::string("--jwt-secret=") + kTestSecret,
       absl::StrCat("--templates-address=127.0.0.1:", FreePort()),
       std::string("--inventory-file=") + MCI_SOURCE_DIR + "/deploy/inventory.json"});
  ASSERT_TRUE(second.WaitServing(second_address, absl::Seconds(30)).ok());
  std::string token = Token("getters", {R::kDesigner});
  CatalogClient a(stack.Channel(stack.catalog_address()), token);
  CatalogClient b(stack.Channel(second_address), token);
  cpb::MultiCloudImage mci = a.Create("getters", "Cached");
  ASSERT_TRUE(a.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  // Both replicas cache HEAD (and @1) once read.
  cpb::MultiCloudImage first = b.Get(mci.name());
  EXPECT_EQ(a.Get(mci.name()).etag(), first.etag());
  // A's own write shows on A at once, etag and all...
  ASSERT_TRUE(a.Tag(mci.name(), "n:v=2").ok());
  cpb::MultiCloudImage on_a = a.Get(mci.name());
  EXPECT_NE(on_a.etag(), first.etag());
  EXPECT_EQ(on_a.tags_size(), 1);
  // The answer says which of the MCI's events it reflects: created (1), the setting (2), the tag.
  EXPECT_EQ(first.sequence(), 2);
  EXPECT_EQ(on_a.sequence(), 3);
  // ...and on B as soon as its event arrives, long before the 10 s safety expiry.
  EXPECT_TRUE(
      Eventually([&] { return b.Get(mci.name()).etag() == on_a.etag(); }, absl::Seconds(3)));
  // A committed revision's answer carries HEAD's latest revision, so it follows too.
  a.Commit(mci.name(), "first");
  cpb::MultiCloudImage rev = b.Get(mci.name() + "@1");
  EXPECT_EQ(rev.latest_revision(), 1);
  a.Commit(mci.name(), "second");
  EXPECT_TRUE(Eventually([&] { return b.Get(mci.name() + "@1").latest_revision() == 2; },
                         absl::Seconds(3)));
}

int64_t CatalogCounter(Stack& stack, const std::string& name) {
  return mci::testing::MetricsCounter(stack.catalog_http_address(), name);
}

// A write whose event this replica never sees (made here straight in the database, as another
// replica's would be with its event lost) shows in ResolveImage and GetMultiCloudImage within the
// HEAD lifetime, and an answer in use is re-read ahead of its expiry, off the request path:
// however long it is read, only the first call reads the database.
TEST(CatalogReplicasTest, HeadAnswersInUseAreRefreshedAheadAndCatchMissedWrites) {
  Stack::Options options;
  options.catalog_flags = {"--head-cache-ttl-ms=4000"};  // answers live 2-4 s
  Stack stack(options);
  ASSERT_TRUE(stack.status().ok()) << stack.status();
  CatalogClient catalog(stack.Channel(stack.catalog_address()), Token("missed", {R::kDesigner}));
  cpb::MultiCloudImage mci = catalog.Create("missed", "Refreshed");
  ASSERT_TRUE(
      catalog.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  // The instance type each method answers for the setting.
  auto resolved_type = [&] {
    cpb::ResolveImageResponse r;
    grpc::Status status = catalog.Resolve(mci.name(), "aws-us-east-1", &r);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return r.setting().instance_type();
  };
  auto got_type = [&] {
    cpb::GetMultiCloudImageRequest get;
    get.set_name(mci.name());
    cpb::MultiCloudImage m;
    grpc::Status status = catalog.Call(&Stub::GetMultiCloudImage, get, &m);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(m.settings_size(), 1);
    return m.settings_size() == 1 ? m.settings(0).instance_type() : "";
  };
  const std::string small = "clouds/aws-us-east-1/instanceTypes/m1.small";
  ASSERT_EQ(resolved_type(), small);
  ASSERT_EQ(got_type(), small);
  // The catalog's own events come back to it through NATS and drop the answers once more: read
  // them again after they have. Once the relay has its acks for both (the create's and the
  // setting's), NATS has sent them to the catalog's subscription too: a second after is ample.
  // A second counted from the writes failed once here (2026-12-07, its output not kept).
  ASSERT_TRUE(
      Eventually([&] { return CatalogCounter(stack, "mci_outbox_event_delay_seconds_count") >= 2; },
                 absl::Seconds(20)));
  absl::SleepFor(absl::Seconds(1));
  ASSERT_EQ(resolved_type(), small);
  ASSERT_EQ(got_type(), small);
  const int64_t resolve_misses = CatalogCounter(stack, "mci_resolve_cache_misses_total");
  const int64_t get_misses = CatalogCounter(stack, "mci_get_cache_misses_total");
  ASSERT_GE(resolve_misses, 1);
  ASSERT_GE(get_misses, 1);

  // Read for 7 s, longer than any answer's lifetime: they stay cached, refreshed in the
  // background, and no call reads the database.
  const absl::Time until = absl::Now() + absl::Seconds(7);
  while (absl::Now() < until) {
    ASSERT_EQ(resolved_type(), small);
    ASSERT_EQ(got_type(), small);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(CatalogCounter(stack, "mci_resolve_cache_misses_total"), resolve_misses);
  EXPECT_EQ(CatalogCounter(stack, "mci_get_cache_misses_total"), get_misses);
  EXPECT_GE(CatalogCounter(stack, "mci_resolve_cache_refreshed_total"), 2);
  EXPECT_GE(CatalogCounter(stack, "mci_get_cache_refreshed_total"), 2);

  // The write nobody announces: the refresh re-reads the answers, not only a version of them.
  pqxx::connection pg(stack.postgres().Url("catalog"));
  pqxx::nontransaction sql(pg);
  const std::string mci_id = mci.name().substr(mci.name().rfind('/') + 1);
  ASSERT_EQ(sql.exec_params("UPDATE mci_settings SET instance_type = 'c1.medium' WHERE"
                            " revision = 0 AND cloud_id = 'aws-us-east-1' AND mci = (SELECT id"
                            " FROM mcis WHERE account = 'missed' AND mci_id = $1)",
                            mci_id)
                .affected_rows(),
            1u);
  const std::string medium = "clouds/aws-us-east-1/instanceTypes/c1.medium";
  EXPECT_TRUE(Eventually([&] { return resolved_type() == medium && got_type() == medium; },
                         absl::Seconds(6)));
  EXPECT_EQ(CatalogCounter(stack, "mci_resolve_cache_misses_total"), resolve_misses);
  EXPECT_EQ(CatalogCounter(stack, "mci_get_cache_misses_total"), get_misses);

  // An MCI gone without a word: its answers are not refreshed, expire, and the calls that read
  // them again are told it is gone.
  ASSERT_EQ(sql.exec_params("DELETE FROM mcis WHERE account = 'missed' AND mci_id = $1", mci_id)
                .affected_rows(),
            1u);
  EXPECT_TRUE(Eventually(
      [&] {
        cpb::ResolveImageResponse r;
        cpb::GetMultiCloudImageRequest get;
        get.set_name(mci.name());
        cpb::MultiCloudImage m;
        return catalog.Resolve(mci.name(), "aws-us-east-1", &r).error_code() ==
                   grpc::StatusCode::NOT_FOUND &&
               catalog.Call(&Stub::GetMultiCloudImage, get, &m).error_code() ==
                   grpc::StatusCode::NOT_FOUND;
      },
      absl::Seconds(6)));
}

TEST(CatalogReplicasTest, SecondReplicaSharesTheWorkSafely) {
  Stack stack(Stack::Options{});
  ASSERT_TRUE(stack.status().ok()) << stack.status();
  int grpc_port = FreePort(), http_port = FreePort();
  std::string second_address = absl::StrCat("127.0.0.1:", grpc_port);
  ServiceProcess second(
      "catalog-replica", MCI_BIN_DIR "/services/catalog/catalog-service",
      {"--grpc-address=" + second_address, absl::StrCat("--http-address=127.0.0.1:", http_port),
       "--database-url=" + stack.postgres().Url("catalog"), "--nats-url=" + stack.nats().Url(),
       std::string("--jwt-secret=") + kTestSecret,
       absl::StrCat("--templates-address=127.0.0.1:", FreePort()),
       std::string("--inventory-file=") + MCI_SOURCE_DIR + "/deploy/inventory.json"});
  ASSERT_TRUE(second.WaitServing(second_address, absl::Seconds(30)).ok());

  std::string token = Token("replicas", {R::kDesigner});
  CatalogClient a(stack.Channel(stack.catalog_address()), token);
  CatalogClient b(stack.Channel(second_address), token);
  cpb::MultiCloudImage mci = a.Create("replicas", "Shared");
  ASSERT_TRUE(a.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());

  // Replica B caches HEAD's answer...
  cpb::ResolveImageResponse r;
  ASSERT_TRUE(b.Resolve(mci.name(), "aws-us-east-1", &r).ok());
  EXPECT_EQ(r.setting().instance_type(), "clouds/aws-us-east-1/instanceTypes/m1.small");
  // ...replica A changes the setting: B follows through the event, well before its cache TTL.
  cpb::UpdateMultiCloudImageSettingRequest edit;
  edit.mutable_setting()->set_name(mci.name() + "/settings/aws-us-east-1");
  edit.mutable_setting()->set_instance_type("clouds/aws-us-east-1/instanceTypes/c1.medium");
  edit.mutable_update_mask()->add_paths("instance_type");
  cpb::MultiCloudImageSetting out;
  ASSERT_TRUE(a.Call(&Stub::UpdateMultiCloudImageSetting, edit, &out).ok());
  EXPECT_TRUE(Eventually(
      [&] {
        cpb::ResolveImageResponse now;
        return b.Resolve(mci.name(), "aws-us-east-1", &now).ok() &&
               now.setting().instance_type() == "clouds/aws-us-east-1/instanceTypes/c1.medium";
      },
      absl::Seconds(5)));

  // Writes through both replicas, then the first one dies: the second takes over relaying, and
  // every event arrives once (JetStream de-duplicates by Nats-Msg-Id), in per-MCI order.
  for (int i = 0; i < 20; ++i) {
    CatalogClient& via = i % 2 ? a : b;
    ASSERT_TRUE(via.Tag(mci.name(), absl::StrCat("n:i=", i)).ok());
  }
  stack.catalog()->Kill();
  for (int i = 20; i < 30; ++i) ASSERT_TRUE(b.Tag(mci.name(), absl::StrCat("n:i=", i)).ok());
  cpb::MultiCloudImage final = b.Get(mci.name());
  EXPECT_EQ(final.tags_size(), 30);

  // Read the stream: 2 + 1 + 30 events for this MCI, sequences 1..33.
  natsConnection* conn = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&conn, stack.nats().Url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, conn, nullptr), NATS_OK);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "MCI_EVENTS";
  so.Config.AckPolicy = js_AckNone;
  natsSubscription* sub = nullptr;
  jsErrCode err;
  ASSERT_EQ(js_SubscribeSync(&sub, js, "mci.v1.events.>", nullptr, &so, &err), NATS_OK);
  std::vector<int64_t> sequences;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (sequences.size() < 34 && absl::Now() < deadline) {
    natsMsg* msg = nullptr;
    if (natsSubscription_NextMsg(&msg, sub, sequences.size() >= 33 ? 1000 : 200) != NATS_OK) {
      if (sequences.size() >= 33) break;
      continue;
    }
    mci::events::v1::MultiCloudImageEvent e;
    if (e.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)) &&
        e.multi_cloud_image() == mci.name()) {
      sequences.push_back(e.sequence());
    }
    natsMsg_Destroy(msg);
  }
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
  natsConnection_Destroy(conn);
  ASSERT_EQ(sequences.size(), 33u);
  for (size_t i = 0; i < sequences.size(); ++i)
    EXPECT_EQ(sequences[i], static_cast<int64_t>(i + 1));
}

}  // namespace
}  // namespace mci::testing
