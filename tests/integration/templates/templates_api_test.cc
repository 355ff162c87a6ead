// mci.templates.v1.ServerTemplateService through its public gRPC API, with the real catalog:
// templates (CRUD, paging, etags, request ids, clone, commit), MCI references, the Xref, launch
// resolution, roles, and the internal deletion calls.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "libs/common/auth.h"
#include "tests/integration/templates/helpers.h"
#include "tests/support/stack.h"

namespace mci::templates::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kEast[] = "clouds/aws-us-east-1";
constexpr char kWest[] = "clouds/aws-us-west-1";
constexpr char kGoogle[] = "clouds/google-us-central1";

class TemplatesApiTest : public ::testing::Test {
 protected:
  TemplatesApiTest()
      : stack_(mci::testing::Stack::Options{.catalog = true, .templates = true}),
        clients_(stack_.Channel(stack_.catalog_address()),
                 stack_.Channel(stack_.templates_address())) {}
  void SetUp() override { ASSERT_TRUE(stack_.status().ok()) << stack_.status(); }

  tpb::ServerTemplateService::Stub& api() { return clients_.templates(); }

  grpc::Status Create(const std::string& id, const std::string& display_name,
                      tpb::ServerTemplate* out, const std::string& token = Designer(),
                      const std::string& request_id = "",
                      const std::string& parent = absl::StrCat("accounts/", kAccount)) {
    tpb::CreateServerTemplateRequest req;
    req.set_parent(parent);
    req.set_server_template_id(id);
    req.set_request_id(request_id);
    req.mutable_server_template()->set_display_name(display_name);
    return api().CreateServerTemplate(Context(token).get(), req, out);
  }

  grpc::Status Resolve(const std::string& tmpl, const std::string& cloud,
                       tpb::ResolveLaunchResponse* out) {
    tpb::ResolveLaunchRequest req;
    req.set_server_template(tmpl);
    req.set_cloud(cloud);
    return api().ResolveLaunch(Context(Observer()).get(), req, out);
  }

  std::vector<std::string> Supported(const std::string& tmpl) {
    tpb::ListSupportedCloudsRequest req;
    req.set_name(tmpl);
    tpb::ListSupportedCloudsResponse resp;
    grpc::Status s = api().ListSupportedClouds(Context(Observer()).get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.clouds().begin(), resp.clouds().end()};
  }

  mci::testing::Stack stack_;
  Clients clients_;
};

TEST_F(TemplatesApiTest, CreateGetListUpdateDelete) {
  tpb::ServerTemplate t;
  EXPECT_EQ(Create("Bad_Id", "x", &t).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status s = Create("web", "", &t);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("display_name"));
  EXPECT_EQ(Create("web", "Web", &t, Observer()).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Create("web", "Web", &t, "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Create("web", "Web", &t, Designer(), "", "accounts/other").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  ASSERT_TRUE(Create("web", "Web v1", &t).ok());
  EXPECT_EQ(t.name(), TemplateName("web"));
  EXPECT_EQ(t.revision(), 0);
  EXPECT_FALSE(t.etag().empty());
  EXPECT_EQ(Create("web", "Again", &t).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // A retried create with the same request_id answers the first result.
  tpb::ServerTemplate first, retry;
  ASSERT_TRUE(Create("", "Generated", &first, Designer(), "req-1").ok());
  ASSERT_TRUE(Create("", "Generated", &retry, Designer(), "req-1").ok());
  EXPECT_EQ(first.name(), retry.name());

  // Other accounts' templates are NOT_FOUND.
  tpb::GetServerTemplateRequest get;
  get.set_name(TemplateName("web"));
  EXPECT_EQ(api().GetServerTemplate(Context(Observer("other")).get(), get, &t).error_code(),
            grpc::StatusCode::NOT_FOUND);
  get.set_name("serverTemplates/web");
  EXPECT_EQ(api().GetServerTemplate(Context(Observer()).get(), get, &t).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Paging visits every template once.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Create(absl::StrCat("p", i), "P", &t).ok());
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    tpb::ListServerTemplatesRequest req;
    req.set_parent(absl::StrCat("accounts/", kAccount));
    req.set_page_size(2);
    req.set_page_token(token);
    tpb::ListServerTemplatesResponse resp;
    ASSERT_TRUE(api().ListServerTemplates(Context(Observer()).get(), req, &resp).ok());
    for (const auto& x : resp.server_templates()) EXPECT_TRUE(seen.insert(x.name()).second);
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_EQ(pages, 3);
  tpb::ListServerTemplatesRequest bad;
  bad.set_parent(absl::StrCat("accounts/", kAccount));
  bad.set_page_token("garbage");
  tpb::ListServerTemplatesResponse resp;
  EXPECT_EQ(api().ListServerTemplates(Context(Observer()).get(), bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_page_token("");
  EXPECT_EQ(api().ListServerTemplates(Context(Observer("other")).get(), bad, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Update with etags.
  get.set_name(TemplateName("web"));
  tpb::ServerTemplate current;
  ASSERT_TRUE(api().GetServerTemplate(Context(Observer()).get(), get, &current).ok());
  tpb::UpdateServerTemplateRequest update;
  *update.mutable_server_template() = current;
  update.mutable_server_template()->set_display_name("Web v2");
  update.mutable_update_mask()->add_paths("display_name");
  tpb::ServerTemplate updated;
  ASSERT_TRUE(api().UpdateServerTemplate(Context(Designer()).get(), update, &updated).ok());
  EXPECT_EQ(updated.display_name(), "Web v2");
  EXPECT_NE(updated.etag(), current.etag());
  EXPECT_EQ(api().UpdateServerTemplate(Context(Designer()).get(), update, &updated).error_code(),
            grpc::StatusCode::ABORTED);
  update.mutable_server_template()->set_etag("");
  update.mutable_update_mask()->add_paths("multi_cloud_images");
  EXPECT_EQ(api().UpdateServerTemplate(Context(Designer()).get(), update, &updated).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(clients_.DeleteTemplate(TemplateName("web")).ok());
  EXPECT_EQ(api().GetServerTemplate(Context(Observer()).get(), get, &t).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(clients_.DeleteTemplate(TemplateName("web")).error_code(), grpc::StatusCode::NOT_FOUND);
}

// References: the first MCI becomes the default; other accounts', unknown MCIs and revisions are
// NOT_FOUND; make-default, set-default and remove keep exactly one default.
TEST_F(TemplatesApiTest, References) {
  std::string base = clients_.CreateMci("base", {kEast, kWest});
  std::string tmpl = clients_.CreateTemplate("refs");
  tpb::ServerTemplate t;
  // Created a moment ago: found through the catalog even before its event arrives.
  ASSERT_TRUE(clients_.Add(tmpl, base, false, &t).ok());
  ASSERT_EQ(t.multi_cloud_images_size(), 1);
  EXPECT_TRUE(t.multi_cloud_images(0).is_default());
  // The clouds come from the replica, which follows the catalog's events.
  EXPECT_TRUE(Eventually(
      [&] {
        return clients_.GetTemplate(tmpl, &t).ok() && t.multi_cloud_images_size() == 1 &&
               t.multi_cloud_images(0).clouds_size() == 2;
      },
      absl::Seconds(20)));
  EXPECT_THAT(t.multi_cloud_images(0).clouds(), ElementsAre(kEast, kWest));

  EXPECT_EQ(clients_.Add(tmpl, MciName("base", "other")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(clients_.Add(tmpl, MciName("nope")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(clients_.Add(tmpl, base + "@9").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(clients_.Add(tmpl, "multiCloudImages/x").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(clients_.Add(TemplateName("nope"), base).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(clients_.Add(tmpl, base, false, nullptr, Observer()).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  std::string second = clients_.CreateMci("second", {kGoogle});
  ASSERT_TRUE(clients_.CommitMci(second).ok());
  ASSERT_TRUE(clients_.Add(tmpl, second + "@1", false, &t).ok());
  EXPECT_THAT(References(t), ElementsAre(base, second + "@1"));
  ASSERT_TRUE(clients_.Add(tmpl, second, true, &t).ok());
  EXPECT_THAT(References(t), ElementsAre(second, base, second + "@1"));
  EXPECT_TRUE(t.multi_cloud_images(0).is_default());
  // Adding the same reference again changes nothing.
  ASSERT_TRUE(clients_.Add(tmpl, base, false, &t).ok());
  EXPECT_THAT(References(t), ElementsAre(second, base, second + "@1"));

  tpb::SetDefaultMultiCloudImageRequest set;
  set.set_server_template(tmpl);
  set.set_multi_cloud_image(base);
  ASSERT_TRUE(api().SetDefaultMultiCloudImage(Context(Designer()).get(), set, &t).ok());
  EXPECT_THAT(References(t), ElementsAre(base, second + "@1", second));
  set.set_multi_cloud_image(MciName("nope"));
  EXPECT_EQ(api().SetDefaultMultiCloudImage(Context(Designer()).get(), set, &t).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Removing the default promotes the first of the others.
  ASSERT_TRUE(clients_.Remove(tmpl, base, &t).ok());
  EXPECT_THAT(References(t), ElementsAre(second + "@1", second));
  EXPECT_TRUE(t.multi_cloud_images(0).is_default());
  EXPECT_EQ(clients_.Remove(tmpl, base).error_code(), grpc::StatusCode::NOT_FOUND);

  // Xref per revision and across all of them.
  EXPECT_THAT(UsageTemplates(clients_.Usages(second, false)), ElementsAre(tmpl));
  EXPECT_THAT(UsageTemplates(clients_.Usages(second + "@1", false)), ElementsAre(tmpl));
  EXPECT_EQ(clients_.Usages(second, true).size(), 2u);
  EXPECT_THAT(clients_.Usages(base, true), IsEmpty());
  tpb::ListMultiCloudImageUsagesRequest other;
  other.set_multi_cloud_image(MciName("second", "other"));
  tpb::ListMultiCloudImageUsagesResponse usages;
  EXPECT_EQ(api().ListMultiCloudImageUsages(Context(Observer()).get(), other, &usages).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// The seed's "Create a Custom RightImage" ServerTemplate steps: clone the template, add the new
// MCI, make it the default, remove the others, commit.
TEST_F(TemplatesApiTest, CustomRightImageCloneAddDefaultRemoveCommit) {
  std::string base = clients_.CreateMci("base", {kEast, kWest});
  ASSERT_TRUE(clients_.CommitMci(base).ok());
  std::string original = clients_.CreateTemplate("original");
  ASSERT_TRUE(clients_.Add(original, base + "@1").ok());
  tpb::ServerTemplate original_at_1;
  ASSERT_TRUE(clients_.Commit(original, false, &original_at_1).ok());
  EXPECT_EQ(original_at_1.name(), original + "@1");

  tpb::CloneServerTemplateRequest clone;
  clone.set_name(original + "@1");
  clone.set_server_template_id("optimized");
  clone.set_request_id("clone-1");
  tpb::ServerTemplate optimized;
  ASSERT_TRUE(api().CloneServerTemplate(Context(Designer()).get(), clone, &optimized).ok());
  EXPECT_EQ(optimized.cloned_from(), original + "@1");
  EXPECT_EQ(optimized.display_name(), "Template original v2");
  EXPECT_THAT(References(optimized), ElementsAre(base + "@1"));
  tpb::ServerTemplate retried;
  ASSERT_TRUE(api().CloneServerTemplate(Context(Designer()).get(), clone, &retried).ok());
  EXPECT_EQ(retried.name(), optimized.name());

  std::string custom = clients_.CreateMci("custom", {kEast});
  tpb::ServerTemplate t;
  ASSERT_TRUE(clients_.Add(optimized.name(), custom, /*make_default=*/true, &t).ok());
  ASSERT_TRUE(clients_.Remove(optimized.name(), base + "@1", &t).ok());
  EXPECT_THAT(References(t), ElementsAre(custom));

  // HEAD references cannot be committed as such.
  grpc::Status refused = clients_.Commit(optimized.name(), false, &t);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr(custom));
  // Asked to, the commit commits the MCI first and pins its new revision.
  ASSERT_TRUE(clients_.Commit(optimized.name(), true, &t).ok());
  EXPECT_EQ(t.name(), optimized.name() + "@1");
  EXPECT_THAT(References(t), ElementsAre(custom + "@1"));
  EXPECT_TRUE(t.multi_cloud_images(0).is_default());
  EXPECT_THAT(t.multi_cloud_images(0).clouds(), ElementsAre(kEast));
  ASSERT_TRUE(clients_.GetTemplate(optimized.name(), &t).ok());
  EXPECT_EQ(t.latest_revision(), 1);
  EXPECT_THAT(References(t), ElementsAre(custom));
  cpb::MultiCloudImage m;
  ASSERT_TRUE(clients_.GetMci(custom, &m).ok());
  EXPECT_EQ(m.latest_revision(), 1);

  tpb::ResolveLaunchResponse launch;
  ASSERT_TRUE(Resolve(optimized.name() + "@1", kEast, &launch).ok());
  EXPECT_EQ(launch.multi_cloud_image(), custom + "@1");
}

// ResolveLaunch: the default MCI first, then the others in order; FAILED_PRECONDITION naming
// the covered clouds otherwise. The seed's "Add New Cloud Support": clone an MCI, add a cloud,
// use the clone.
TEST_F(TemplatesApiTest, ListSupportedCloudsAndResolveLaunch) {
  std::string east_only = clients_.CreateMci("east-only", {kEast});
  std::string east_west = clients_.CreateMci("east-west", {kEast, kWest});
  std::string tmpl = clients_.CreateTemplate("launcher");
  tpb::ResolveLaunchResponse launch;
  EXPECT_EQ(Resolve(tmpl, kEast, &launch).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(clients_.Add(tmpl, east_only).ok());
  ASSERT_TRUE(clients_.Add(tmpl, east_west).ok());
  // The supported clouds come from the replica, which follows the catalog's events.
  EXPECT_TRUE(Eventually([&] { return Supported(tmpl).size() == 2; }, absl::Seconds(20)));
  EXPECT_THAT(Supported(tmpl), ElementsAre(kEast, kWest));

  ASSERT_TRUE(Resolve(tmpl, kEast, &launch).ok());
  EXPECT_EQ(launch.multi_cloud_image(), east_only);
  EXPECT_EQ(launch.image().setting().cloud(), kEast);
  ASSERT_TRUE(Resolve(tmpl, kWest, &launch).ok());
  EXPECT_EQ(launch.multi_cloud_image(), east_west);
  grpc::Status none = Resolve(tmpl, kGoogle, &launch);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(none.error_message(), HasSubstr(kEast));
  EXPECT_THAT(none.error_message(), HasSubstr(kWest));
  EXPECT_EQ(Resolve(tmpl, "aws-us-east-1", &launch).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Add New Cloud Support: clone east-west, add google, make the clone the default.
  cpb::CloneMultiCloudImageRequest clone;
  clone.set_name(east_west);
  clone.set_multi_cloud_image_id("east-west-google");
  cpb::MultiCloudImage cloned;
  ASSERT_TRUE(
      clients_.catalog().CloneMultiCloudImage(Context(Designer()).get(), clone, &cloned).ok());
  cpb::CreateMultiCloudImageSettingRequest setting;
  setting.set_parent(cloned.name());
  *setting.mutable_setting() = SettingFor(kGoogle);
  cpb::MultiCloudImageSetting created;
  ASSERT_TRUE(clients_.catalog()
                  .CreateMultiCloudImageSetting(Context(Designer()).get(), setting, &created)
                  .ok());
  ASSERT_TRUE(clients_.Add(tmpl, cloned.name(), /*make_default=*/true).ok());
  // The launch finds the new cloud right away, asking the catalog if the replica lags behind.
  ASSERT_TRUE(Resolve(tmpl, kGoogle, &launch).ok()) << "google";
  EXPECT_EQ(launch.multi_cloud_image(), cloned.name());
  ASSERT_TRUE(Resolve(tmpl, kEast, &launch).ok());
  EXPECT_EQ(launch.multi_cloud_image(), cloned.name());
  EXPECT_TRUE(Eventually([&] { return Supported(tmpl).size() == 3; }, absl::Seconds(20)));
}

// Reserve and Release are for the catalog's service identity only, and idempotent per deletion.
TEST_F(TemplatesApiTest, DeletionReservationsAreInternalAndIdempotent) {
  auth::Authenticator authenticator(mci::testing::kTestSecret);
  std::string catalog_token = authenticator.ServiceToken("catalog-service");
  std::string mci = clients_.CreateMci("fenced", {kEast});
  std::string tmpl = clients_.CreateTemplate("fence-test");

  tpb::ReserveMultiCloudImageDeletionRequest reserve;
  reserve.set_multi_cloud_image(mci);
  reserve.set_deletion_id("del-test-1");
  tpb::ReserveMultiCloudImageDeletionResponse reserved;
  EXPECT_EQ(api()
                .ReserveMultiCloudImageDeletion(Context(Designer()).get(), reserve, &reserved)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(
      api()
          .ReserveMultiCloudImageDeletion(
              Context(authenticator.ServiceToken("marketplace-service")).get(), reserve, &reserved)
          .error_code(),
      grpc::StatusCode::PERMISSION_DENIED);

  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        api()
            .ReserveMultiCloudImageDeletion(Context(catalog_token).get(), reserve, &reserved)
            .ok());
    EXPECT_TRUE(reserved.reserved());
  }
  grpc::Status fenced = clients_.Add(tmpl, mci);
  EXPECT_EQ(fenced.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(fenced.error_message(), HasSubstr("being deleted"));

  tpb::ReleaseMultiCloudImageDeletionRequest release;
  release.set_multi_cloud_image(mci);
  release.set_deletion_id("del-test-1");
  release.set_deleted(false);
  google::protobuf::Empty empty;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        api().ReleaseMultiCloudImageDeletion(Context(catalog_token).get(), release, &empty).ok());
  }
  ASSERT_TRUE(clients_.Add(tmpl, mci).ok());
  // An aborted deletion id never raises the fence again; a new one sees the reference.
  ASSERT_TRUE(
      api().ReserveMultiCloudImageDeletion(Context(catalog_token).get(), reserve, &reserved).ok());
  EXPECT_FALSE(reserved.reserved());
  reserve.set_deletion_id("del-test-2");
  ASSERT_TRUE(
      api().ReserveMultiCloudImageDeletion(Context(catalog_token).get(), reserve, &reserved).ok());
  EXPECT_FALSE(reserved.reserved());
  ASSERT_EQ(reserved.usages_size(), 1);
  EXPECT_EQ(reserved.usages(0).server_template(), tmpl);
  EXPECT_EQ(reserved.usages(0).multi_cloud_image(), mci);
  // Releasing a deletion nobody knows is fine.
  release.set_deletion_id("del-unknown");
  EXPECT_TRUE(
      api().ReleaseMultiCloudImageDeletion(Context(catalog_token).get(), release, &empty).ok());
}

// Readiness follows the database: NOT_SERVING while PostgreSQL is down, SERVING (and working)
// again once it is back.
TEST_F(TemplatesApiTest, ReadinessFollowsTheDatabase) {
  const std::string service = "mci.templates.v1.ServerTemplateService";
  auto serving = [&](int want) {
    auto health = mci::testing::HealthCheck(stack_.templates_address(), service);
    return health.ok() && *health == want;
  };
  ASSERT_TRUE(serving(1));
  stack_.postgres().Stop();
  EXPECT_TRUE(Eventually([&] { return serving(2); }, absl::Seconds(20)));
  tpb::ServerTemplate t;
  EXPECT_EQ(Create("during-outage", "X", &t).error_code(), grpc::StatusCode::UNAVAILABLE);
  stack_.postgres().Start();
  EXPECT_TRUE(Eventually([&] { return serving(1); }, absl::Seconds(30)));
  EXPECT_TRUE(Eventually([&] { return Create("after-outage", "X", &t).ok(); }, absl::Seconds(10)));
}

}  // namespace
}  // namespace mci::templates::testing
