// ResolveLaunch answered from memory by two template-reference replicas on one database: each
// follows the other's template writes (announced on core NATS) and the catalog's MCI changes
// (MCI_EVENTS) within moments, and a launch it can answer from memory needs no catalog call.

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "tests/integration/templates/helpers.h"
#include "tests/support/stack.h"

namespace mci::templates::testing {
namespace {

constexpr char kEast[] = "clouds/aws-us-east-1";

grpc::Status Launch(Clients& via, const std::string& tmpl, tpb::ResolveLaunchResponse* out) {
  tpb::ResolveLaunchRequest req;
  req.set_server_template(tmpl);
  req.set_cloud(kEast);
  return via.templates().ResolveLaunch(Context(Observer()).get(), req, out);
}

TEST(TemplatesLaunchCacheTest, ReplicasFollowEachOthersWritesAndTheCatalogsChanges) {
  mci::testing::Stack stack(mci::testing::Stack::Options{.catalog = true, .templates = true});
  ASSERT_TRUE(stack.status().ok()) << stack.status();
  std::string second_address = absl::StrCat("127.0.0.1:", mci::testing::FreePort());
  mci::testing::ServiceProcess second(
      "templates-replica", MCI_BIN_DIR "/services/templates/template-reference-service",
      {"--grpc-address=" + second_address,
       absl::StrCat("--http-address=127.0.0.1:", mci::testing::FreePort()),
       "--database-url=" + stack.postgres().Url("templates"), "--nats-url=" + stack.nats().Url(),
       std::string("--jwt-secret=") + mci::testing::kTestSecret,
       "--catalog-address=" + stack.catalog_address()});
  ASSERT_TRUE(second.WaitServing(second_address, absl::Seconds(30)).ok());
  Clients a(stack.Channel(stack.catalog_address()), stack.Channel(stack.templates_address()));
  Clients b(stack.Channel(stack.catalog_address()), stack.Channel(second_address));

  std::string base = a.CreateMci("base", {kEast});
  std::string other = a.CreateMci("other", {kEast});
  std::string tmpl = a.CreateTemplate("web");
  ASSERT_TRUE(a.Add(tmpl, base, /*make_default=*/true).ok());
  tpb::ResolveLaunchResponse launch;
  ASSERT_TRUE(Launch(b, tmpl, &launch).ok());
  EXPECT_EQ(launch.multi_cloud_image(), base);

  // Replica A changes the template's default; B, which has the template cached, follows.
  ASSERT_TRUE(a.Add(tmpl, other, /*make_default=*/true).ok());
  EXPECT_TRUE(Eventually(
      [&] { return Launch(b, tmpl, &launch).ok() && launch.multi_cloud_image() == other; },
      absl::Seconds(3)));

  // The catalog changes the default MCI's setting; both replicas' cached answers follow.
  ASSERT_TRUE(Launch(a, tmpl, &launch).ok());
  cpb::UpdateMultiCloudImageSettingRequest edit;
  edit.mutable_setting()->set_name(other + "/settings/aws-us-east-1");
  edit.mutable_setting()->set_instance_type("clouds/aws-us-east-1/instanceTypes/m1.xlarge");
  edit.mutable_update_mask()->add_paths("instance_type");
  cpb::MultiCloudImageSetting updated;
  grpc::Status s =
      a.catalog().UpdateMultiCloudImageSetting(Context(Designer()).get(), edit, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  for (Clients* via : {&a, &b}) {
    EXPECT_TRUE(Eventually(
        [&] {
          return Launch(*via, tmpl, &launch).ok() &&
                 launch.image().setting().instance_type() ==
                     "clouds/aws-us-east-1/instanceTypes/m1.xlarge";
        },
        absl::Seconds(3)));
  }

  // Answered from memory: with the catalog gone, the cached launch still resolves on both.
  stack.catalog()->Terminate();
  for (Clients* via : {&a, &b}) {
    s = Launch(*via, tmpl, &launch);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(launch.multi_cloud_image(), other);
  }
}

// A launch in steady use is answered from memory however long it runs: its template and the
// catalog's answer are read again ahead of their expiry, in the background; a template deleted
// without a word (straight in the database) stops launching once its entry expires.
TEST(TemplatesLaunchCacheTest, LaunchesInUseAreRefreshedAheadOfTheirExpiry) {
  mci::testing::Stack::Options options;
  options.templates = true;
  options.templates_flags = {"--launch-cache-ttl-ms=4000"};  // entries live 2-4 s
  mci::testing::Stack stack(options);
  ASSERT_TRUE(stack.status().ok()) << stack.status();
  Clients a(stack.Channel(stack.catalog_address()), stack.Channel(stack.templates_address()));
  std::string base = a.CreateMci("base", {kEast});
  std::string tmpl = a.CreateTemplate("web");
  ASSERT_TRUE(a.Add(tmpl, base, /*make_default=*/true).ok());
  tpb::ResolveLaunchResponse launch;
  ASSERT_TRUE(Launch(a, tmpl, &launch).ok());
  // The writes' own events and announcements drop the entries once more: launch again after.
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(Launch(a, tmpl, &launch).ok());
  auto counter = [&](const std::string& name) {
    return mci::testing::MetricsCounter(stack.templates_http_address(), name);
  };
  const int64_t misses = counter("mci_launch_cache_misses_total");
  ASSERT_GE(misses, 2);  // the template and the answer, at least once each

  const absl::Time until = absl::Now() + absl::Seconds(7);
  while (absl::Now() < until) {
    grpc::Status s = Launch(a, tmpl, &launch);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(launch.multi_cloud_image(), base);
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(counter("mci_launch_cache_misses_total"), misses);
  EXPECT_GE(counter("mci_launch_cache_refreshed_total"), 4);

  pqxx::connection pg(stack.postgres().Url("templates"));
  pqxx::nontransaction sql(pg);
  ASSERT_EQ(sql.exec("DELETE FROM server_templates WHERE account = 'acme' AND template_id = 'web'")
                .affected_rows(),
            1u);
  EXPECT_TRUE(Eventually(
      [&] { return Launch(a, tmpl, &launch).error_code() == grpc::StatusCode::NOT_FOUND; },
      absl::Seconds(6)));
}

}  // namespace
}  // namespace mci::templates::testing
