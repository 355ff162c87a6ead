// The foundation every service stands on, checked against the real catalog binary: gRPC health
// tied to database readiness, HTTP probes and metrics, token authentication and roles, and server
// reflection.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"
#include "tests/support/stack.h"

namespace mci::testing {
namespace {

namespace catalog = ::mci::catalog::v1;
using auth::Role;

constexpr char kServiceName[] = "mci.catalog.v1.CatalogService";
constexpr int kServing = 1;
constexpr int kNotServing = 2;

// An HTTP client for 127.0.0.1:PORT.
std::unique_ptr<httplib::Client> HttpClient(const std::string& address) {
  auto client = std::make_unique<httplib::Client>("http://" + address);
  client->set_connection_timeout(2, 0);
  client->set_read_timeout(5, 0);
  return client;
}

// The HTTP status of GET path, or -1 when the request failed.
int HttpStatus(const std::string& address, const std::string& path) {
  auto result = HttpClient(address)->Get(path.c_str());
  return result ? result->status : -1;
}

class FoundationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>(Stack::Options{});
    ASSERT_TRUE(stack_->status().ok()) << stack_->status();
    stub_ = catalog::CatalogService::NewStub(stack_->Channel(stack_->catalog_address()));
  }

  grpc::Status Create(const std::string& token, const std::string& account,
                      const std::string& display_name, const std::string& description,
                      catalog::MultiCloudImage* out) {
    catalog::CreateMultiCloudImageRequest request;
    request.set_parent("accounts/" + account);
    request.mutable_multi_cloud_image()->set_display_name(display_name);
    request.mutable_multi_cloud_image()->set_description(description);
    return stub_->CreateMultiCloudImage(Context(token).get(), request, out);
  }

  grpc::Status Get(const std::string& token, const std::string& name,
                   catalog::MultiCloudImage* out) {
    catalog::GetMultiCloudImageRequest request;
    request.set_name(name);
    return stub_->GetMultiCloudImage(Context(token).get(), request, out);
  }

  int Health(const std::string& service) {
    return HealthCheck(stack_->catalog_address(), service).value_or(-1);
  }

  std::unique_ptr<Stack> stack_;
  std::unique_ptr<catalog::CatalogService::Stub> stub_;
};

// (a) Health/Check answers SERVING for the whole server and for the catalog service.
TEST_F(FoundationTest, HealthIsServing) {
  auto whole = HealthCheck(stack_->catalog_address(), "");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(*whole, kServing);
  auto service = HealthCheck(stack_->catalog_address(), kServiceName);
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ(*service, kServing);
  EXPECT_EQ(HttpStatus(stack_->catalog_http_address(), "/healthz"), 200);
  EXPECT_EQ(HttpStatus(stack_->catalog_http_address(), "/readyz"), 200);
}

// (b) Readiness follows the database: NOT_SERVING and /readyz 503 while PostgreSQL is down,
// SERVING and 200 again once it is back; liveness stays up throughout.
TEST_F(FoundationTest, HealthFollowsTheDatabase) {
  const std::string http = stack_->catalog_http_address();
  stack_->postgres().Stop();

  EXPECT_TRUE(Eventually([&] { return Health("") == kNotServing; }, absl::Seconds(10)))
      << "health of \"\" is " << Health("") << " 10 s after PostgreSQL stopped";
  EXPECT_EQ(Health(kServiceName), kNotServing);
  EXPECT_TRUE(Eventually([&] { return HttpStatus(http, "/readyz") == 503; }, absl::Seconds(10)))
      << "/readyz answers " << HttpStatus(http, "/readyz");
  EXPECT_EQ(HttpStatus(http, "/healthz"), 200) << "liveness must not depend on the database";
  EXPECT_EQ(Health("liveness"), kServing) << "gRPC liveness must not depend on the database";

  stack_->postgres().Start();
  EXPECT_TRUE(Eventually([&] { return Health("") == kServing; }, absl::Seconds(15)))
      << "health of \"\" is " << Health("") << " 15 s after PostgreSQL restarted";
  EXPECT_EQ(Health(kServiceName), kServing);
  EXPECT_TRUE(Eventually([&] { return HttpStatus(http, "/readyz") == 200; }, absl::Seconds(10)))
      << "/readyz answers " << HttpStatus(http, "/readyz");

  // The connection pool recovers: a write goes through after the outage.
  catalog::MultiCloudImage created;
  grpc::Status status =
      Create(Token("acme", {Role::kDesigner}), "acme", "After outage", "", &created);
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

// (c) Authentication: missing, foreign-signed and expired tokens are UNAUTHENTICATED.
TEST_F(FoundationTest, BadTokensAreUnauthenticated) {
  struct Case {
    const char* what;
    std::string token;
  };
  for (const Case& c : {Case{"no token", ""},
                        Case{"token signed with another secret",
                             Token("acme", {Role::kDesigner}, absl::Hours(1), "another-secret")},
                        Case{"expired token", Token("acme", {Role::kDesigner}, -absl::Minutes(5))},
                        Case{"not a JWT", "not-a-token"}}) {
    catalog::MultiCloudImage created;
    grpc::Status status = Create(c.token, "acme", "Base", "", &created);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << c.what << ": " << status.error_message();
    EXPECT_FALSE(status.error_message().empty()) << c.what;

    catalog::MultiCloudImage got;
    status = Get(c.token, "accounts/acme/multiCloudImages/base", &got);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << c.what << " (Get): " << status.error_message();
  }
}

// (c) Roles: an observer cannot create.
TEST_F(FoundationTest, ObserverCannotCreate) {
  catalog::MultiCloudImage created;
  grpc::Status status = Create(Token("acme", {Role::kObserver}), "acme", "Base", "", &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "designer")) << status.error_message();
}

// (c) A designer's create then get round-trips the fields; the create is counted in /metrics.
TEST_F(FoundationTest, DesignerCreatesAndGets) {
  const std::string designer = Token("acme", {Role::kDesigner});
  catalog::MultiCloudImage created;
  grpc::Status status = Create(designer, "acme", "Base v1", "Ubuntu base image, 64-bit", &created);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_TRUE(absl::StartsWith(created.name(), "accounts/acme/multiCloudImages/"))
      << created.name();
  EXPECT_EQ(created.display_name(), "Base v1");
  EXPECT_EQ(created.description(), "Ubuntu base image, 64-bit");
  EXPECT_EQ(created.revision(), 0);

  catalog::MultiCloudImage got;
  status = Get(designer, created.name(), &got);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_EQ(got.name(), created.name());
  EXPECT_EQ(got.display_name(), "Base v1");
  EXPECT_EQ(got.description(), "Ubuntu base image, 64-bit");

  // Failures are counted too.
  catalog::MultiCloudImage denied;
  Create(Token("acme", {Role::kObserver}), "acme", "Denied", "", &denied);

  auto metrics = HttpClient(stack_->catalog_http_address())->Get("/metrics");
  ASSERT_TRUE(metrics) << "GET /metrics failed";
  ASSERT_EQ(metrics->status, 200);
  bool ok_line = false, denied_line = false;
  for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
    if (!absl::StartsWith(line, "mci_grpc_requests_total{") ||
        !absl::StrContains(line, "method=\"CreateMultiCloudImage\"")) {
      continue;
    }
    if (absl::StrContains(line, "code=\"OK\"")) ok_line = true;
    if (absl::StrContains(line, "code=\"PERMISSION_DENIED\"")) denied_line = true;
  }
  EXPECT_TRUE(ok_line) << metrics->body;
  EXPECT_TRUE(denied_line) << metrics->body;
}

// A caller reads in its own account only: an observer of the account sees the MCI, another
// account gets NOT_FOUND (not PERMISSION_DENIED: it may not learn that the MCI exists).
TEST_F(FoundationTest, OtherAccountsSeeNotFound) {
  catalog::MultiCloudImage created;
  grpc::Status status = Create(Token("acme", {Role::kDesigner}), "acme", "Private", "", &created);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();

  catalog::MultiCloudImage got;
  status = Get(Token("acme", {Role::kObserver}), created.name(), &got);
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_EQ(got.display_name(), "Private");

  status = Get(Token("globex", {Role::kDesigner}), created.name(), &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

// (d) Server reflection lists the catalog, health and reflection services.
TEST_F(FoundationTest, ReflectionListsServices) {
  auto services = ListServices(stack_->catalog_address());
  ASSERT_TRUE(services.ok()) << services.status();
  auto has = [&](const std::string& name) {
    return std::find(services->begin(), services->end(), name) != services->end();
  };
  EXPECT_TRUE(has(kServiceName));
  EXPECT_TRUE(has("grpc.health.v1.Health"));
  EXPECT_TRUE(has("grpc.reflection.v1alpha.ServerReflection"));
}

}  // namespace
}  // namespace mci::testing
