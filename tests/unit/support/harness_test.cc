// Exercises the process harness (PostgreSQL, NATS, ServiceProcess, health, reflection) against
// fake-service, a bare ServiceHost whose readiness pings its database.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/stack.h"

namespace mci::testing {
namespace {

TEST(TestPostgresTest, CreatesDatabasesAndSurvivesRestart) {
  TestPostgres pg;
  std::string url = pg.CreateDatabase("alpha");
  EXPECT_EQ(pg.CreateDatabase("alpha"), url);  // idempotent
  EXPECT_EQ(url, absl::StrCat("postgresql://postgres@127.0.0.1:", pg.port(), "/alpha"));
  {
    pqxx::connection c(url);
    pqxx::work w(c);
    w.exec0("CREATE TABLE t (x int)");
    w.exec0("INSERT INTO t VALUES (42)");
    w.commit();
  }
  pg.Stop();
  EXPECT_FALSE(pg.running());
  EXPECT_THROW(pqxx::connection{url}, std::exception);
  pg.Start();
  EXPECT_TRUE(pg.running());
  pqxx::connection c(url);
  pqxx::nontransaction n(c);
  EXPECT_EQ(n.exec1("SELECT x FROM t")[0].as<int>(), 42);
}

TEST(TestNatsTest, StopsAndStartsOnTheSamePort) {
  TestNats nats;
  int port = nats.port();
  EXPECT_EQ(nats.Url(), absl::StrCat("nats://127.0.0.1:", port));
  nats.Stop();
  EXPECT_FALSE(nats.running());
  nats.Start();
  EXPECT_TRUE(nats.running());
  EXPECT_EQ(nats.port(), port);
}

TEST(ServiceProcessTest, HealthFollowsTheDatabase) {
  TestPostgres pg;
  std::string db = pg.CreateDatabase("fake");
  std::string grpc_address = absl::StrCat("127.0.0.1:", FreePort());
  int http_port = FreePort();
  ServiceProcess fake(
      "fake", FAKE_SERVICE,
      {"--grpc-address=" + grpc_address, absl::StrCat("--http-address=127.0.0.1:", http_port),
       "--database-url=" + db});
  ASSERT_TRUE(fake.WaitServing(grpc_address, absl::Seconds(30)).ok());
  auto health = HealthCheck(grpc_address, "");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, 1);
  // ServiceHost registers its service name with the health service.
  EXPECT_EQ(HealthCheck(grpc_address, "mci.fake.v1.FakeService").value_or(-1), 1);
  EXPECT_EQ(HealthCheck(grpc_address, "no.such.Service").status().code(),
            absl::StatusCode::kNotFound);

  auto services = ListServices(grpc_address);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_NE(std::find(services->begin(), services->end(), "grpc.health.v1.Health"),
            services->end());
  EXPECT_NE(
      std::find(services->begin(), services->end(), "grpc.reflection.v1alpha.ServerReflection"),
      services->end());

  httplib::Client http("127.0.0.1", http_port);
  pg.Stop();
  EXPECT_TRUE(Eventually([&] { return HealthCheck(grpc_address, "").value_or(0) == 2; },
                         absl::Seconds(10)));
  EXPECT_EQ(HealthCheck(grpc_address, "mci.fake.v1.FakeService").value_or(-1), 2);
  EXPECT_TRUE(Eventually(
      [&] {
        auto r = http.Get("/readyz");
        return r && r->status == 503;
      },
      absl::Seconds(10)));
  pg.Start();
  EXPECT_TRUE(Eventually([&] { return HealthCheck(grpc_address, "").value_or(0) == 1; },
                         absl::Seconds(10)));

  fake.Terminate();
  EXPECT_FALSE(fake.running());
  EXPECT_FALSE(HealthCheck(grpc_address, "").ok());
  fake.Restart();
  EXPECT_TRUE(fake.WaitServing(grpc_address, absl::Seconds(30)).ok());
  fake.Kill();
  EXPECT_FALSE(fake.running());
}

TEST(ServiceProcessTest, ReportsAMissingBinary) {
  ServiceProcess missing("missing", "/nonexistent/binary", {});
  absl::Status s = missing.WaitServing("127.0.0.1:1", absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("exec failed"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace mci::testing
