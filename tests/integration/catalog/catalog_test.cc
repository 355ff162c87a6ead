// The catalog's seed procedures and rules, against the real catalog process, PostgreSQL and NATS.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/integration/catalog/catalog_client.h"
#include "tests/support/stack.h"

namespace mci::testing {
namespace {

using ::testing::HasSubstr;
using R = auth::Role;
using Stub = cpb::CatalogService::Stub;

const std::vector<R> kAllRoles = {R::kObserver, R::kActor,     R::kDesigner,
                                  R::kLibrary,  R::kPublisher, R::kAdmin};

// An ImportMultiCloudImage into `account` of a snapshot as the marketplace sends one: imported
// from publication `source`, revision `revision` of `lineage`; the caller adds settings and tags.
cpb::ImportMultiCloudImageRequest ImportOf(const std::string& account,
                                           const std::string& display_name,
                                           const std::string& source, const std::string& lineage,
                                           int64_t revision) {
  cpb::ImportMultiCloudImageRequest req;
  req.set_parent("accounts/" + account);
  req.mutable_snapshot()->set_display_name(display_name);
  cpb::Origin* origin = req.mutable_snapshot()->mutable_origin();
  origin->set_kind(cpb::Origin::IMPORTED);
  origin->set_source(source);
  origin->set_lineage(lineage);
  origin->set_source_revision(revision);
  return req;
}

// Adds a setting of `image` and `instance_type` (names within `cloud`) to `mci`.
void AddSetting(cpb::MultiCloudImage* mci, const std::string& cloud, const std::string& image,
                const std::string& instance_type) {
  cpb::MultiCloudImageSetting* s = mci->add_settings();
  s->set_cloud("clouds/" + cloud);
  s->set_image(absl::StrCat("clouds/", cloud, "/images/", image));
  s->set_instance_type(absl::StrCat("clouds/", cloud, "/instanceTypes/", instance_type));
}

// An UpdateMultiCloudImage of the display name only, under `etag` (none when empty).
cpb::UpdateMultiCloudImageRequest Rename(const std::string& name, const std::string& display_name,
                                         const std::string& etag) {
  cpb::UpdateMultiCloudImageRequest req;
  req.mutable_multi_cloud_image()->set_name(name);
  req.mutable_multi_cloud_image()->set_display_name(display_name);
  req.mutable_multi_cloud_image()->set_etag(etag);
  req.mutable_update_mask()->add_paths("display_name");
  return req;
}

class CatalogTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { stack_ = new Stack(Stack::Options{}); }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(stack_->status().ok()) << stack_->status();
    static std::atomic<int> counter{0};
    account_ = absl::StrCat("acct", ++counter);
  }
  CatalogClient Client(const std::string& account, const std::vector<R>& roles = kAllRoles) {
    return CatalogClient(stack_->Channel(stack_->catalog_address()), Token(account, roles));
  }

  static Stack* stack_;
  std::string account_;
};
Stack* CatalogTest::stack_ = nullptr;

// GetMultiCloudImage and ResolveImage are registered raw (their cached answers go out as bytes):
// the service parses the body itself, so an unreadable one must be INVALID_ARGUMENT, and a good
// one answered the same from the database and from the cache.
TEST_F(CatalogTest, RawMethodsRefuseAnUnreadableBody) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Raw");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  grpc::GenericStub stub(stack_->Channel(stack_->catalog_address()));
  auto call = [&](const std::string& method, const std::string& body, const std::string& token,
                  std::string* reply) {
    auto context = Context(token);
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1), response;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub.UnaryCall(context.get(), "/mci.catalog.v1.CatalogService/" + method, {}, &request,
                   &response, [&](grpc::Status s) {
                     std::lock_guard<std::mutex> lock(mu);
                     status = std::move(s);
                     done = true;
                     cv.notify_one();
                   });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    if (status.ok() && reply != nullptr) {
      std::vector<grpc::Slice> slices;
      (void)response.Dump(&slices);
      for (const auto& s : slices)
        reply->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return status;
  };
  const std::string garbage("\xff\xff\xff", 3);
  for (const std::string method : {"GetMultiCloudImage", "ResolveImage"}) {
    SCOPED_TRACE(method);
    grpc::Status bad = call(method, garbage, Token(account_, kAllRoles), nullptr);
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(bad.error_message(), HasSubstr(method + "Request"));
    EXPECT_EQ(call(method, garbage, "not-a-token", nullptr).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }

  // A good body, twice (the second from the cache): the same reply.
  cpb::GetMultiCloudImageRequest get;
  get.set_name(mci.name());
  std::string first, second;
  ASSERT_TRUE(
      call("GetMultiCloudImage", get.SerializeAsString(), Token(account_, kAllRoles), &first).ok());
  ASSERT_TRUE(
      call("GetMultiCloudImage", get.SerializeAsString(), Token(account_, kAllRoles), &second)
          .ok());
  EXPECT_EQ(first, second);
  cpb::MultiCloudImage replied;
  ASSERT_TRUE(replied.ParseFromString(second));
  EXPECT_EQ(replied.name(), mci.name());
  EXPECT_EQ(replied.display_name(), "Raw");

  cpb::ResolveImageRequest resolve;
  resolve.set_name(mci.name());
  resolve.set_cloud("clouds/aws-us-east-1");
  first.clear();
  second.clear();
  ASSERT_TRUE(
      call("ResolveImage", resolve.SerializeAsString(), Token(account_, kAllRoles), &first).ok());
  ASSERT_TRUE(
      call("ResolveImage", resolve.SerializeAsString(), Token(account_, kAllRoles), &second).ok());
  EXPECT_EQ(first, second);
  cpb::ResolveImageResponse resolved;
  ASSERT_TRUE(resolved.ParseFromString(second));
  EXPECT_EQ(resolved.setting().image(), "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6");
  // A cloud the MCI does not cover: FAILED_PRECONDITION, from the database and the cache alike.
  resolve.set_cloud("clouds/aws-us-west-1");
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(call("ResolveImage", resolve.SerializeAsString(), Token(account_, kAllRoles), nullptr)
                  .error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
}

// Seed: "Create a New MultiCloud Image".
TEST_F(CatalogTest, CreateNewMultiCloudImageProcedure) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "CentOS 32-bit", "Small instances");
  EXPECT_EQ(mci.origin().kind(), cpb::Origin::CREATED);
  EXPECT_EQ(mci.origin().lineage(), mci.name());

  cpb::ListAvailableCloudsRequest avail;
  avail.set_name(mci.name());
  cpb::ListAvailableCloudsResponse before;
  ASSERT_TRUE(c.Call(&Stub::ListAvailableClouds, avail, &before).ok());
  ASSERT_GE(before.clouds_size(), 7);

  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  grpc::Status second =
      c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "c1.medium");
  EXPECT_EQ(second.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(second.error_message(), HasSubstr("already has a setting for clouds/aws-us-east-1"));
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-west-1", "centos-5-4-i386-v5-6", "c1.medium").ok());

  cpb::ListAvailableCloudsResponse after;
  ASSERT_TRUE(c.Call(&Stub::ListAvailableClouds, avail, &after).ok());
  EXPECT_EQ(after.clouds_size(), before.clouds_size() - 2);
  for (const auto& cloud : after.clouds()) {
    EXPECT_NE(cloud.name(), "clouds/aws-us-east-1");
    EXPECT_NE(cloud.name(), "clouds/aws-us-west-1");
  }

  cpb::ValidateMultiCloudImageRequest vreq;
  vreq.set_name(mci.name());
  cpb::ValidateMultiCloudImageResponse findings;
  ASSERT_TRUE(c.Call(&Stub::ValidateMultiCloudImage, vreq, &findings).ok());
  ASSERT_EQ(findings.findings_size(), 1);
  EXPECT_EQ(findings.findings(0).code(), "MISSING_AGENT_TAG");

  ASSERT_TRUE(c.Tag(mci.name(), "provides:rs_agent_type=right_link").ok());
  findings.Clear();
  ASSERT_TRUE(c.Call(&Stub::ValidateMultiCloudImage, vreq, &findings).ok());
  EXPECT_EQ(findings.findings_size(), 0) << findings.DebugString();

  cpb::MultiCloudImage got = c.Get(mci.name());
  EXPECT_EQ(got.display_name(), "CentOS 32-bit");
  EXPECT_EQ(got.description(), "Small instances");
  EXPECT_EQ(got.settings_size(), 2);
  EXPECT_THAT(got.tags(), ::testing::ElementsAre("provides:rs_agent_type=right_link"));
  EXPECT_THAT(got.clouds(), ::testing::ElementsAre("clouds/aws-us-east-1", "clouds/aws-us-west-1"));

  cpb::ResolveImageResponse resolved;
  ASSERT_TRUE(c.Resolve(mci.name(), "aws-us-west-1", &resolved).ok());
  EXPECT_EQ(resolved.setting().instance_type(), "clouds/aws-us-west-1/instanceTypes/c1.medium");
  EXPECT_EQ(resolved.image().architecture(), cpb::I386);
  EXPECT_EQ(resolved.image_provider_id().rfind("ami-", 0), 0u);

  cpb::MultiCloudImage rev1 = c.Commit(mci.name(), "first cut");
  EXPECT_EQ(rev1.name(), mci.name() + "@1");
  EXPECT_EQ(rev1.revision(), 1);
  EXPECT_TRUE(rev1.read_only());
  EXPECT_EQ(rev1.commit_message(), "first cut");
  EXPECT_EQ(rev1.settings_size(), 2);

  // A committed revision cannot be edited: clone it.
  cpb::UpdateMultiCloudImageSettingRequest edit;
  edit.mutable_setting()->set_name(mci.name() + "@1/settings/aws-us-east-1");
  edit.mutable_setting()->set_instance_type("clouds/aws-us-east-1/instanceTypes/c1.medium");
  edit.mutable_update_mask()->add_paths("instance_type");
  cpb::MultiCloudImageSetting ignored;
  grpc::Status refused = c.Call(&Stub::UpdateMultiCloudImageSetting, edit, &ignored);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("clone"));

  // HEAD edits leave revision 1 untouched.
  edit.mutable_setting()->set_name(mci.name() + "/settings/aws-us-east-1");
  ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImageSetting, edit, &ignored).ok());
  cpb::ResolveImageResponse head, pinned;
  ASSERT_TRUE(c.Resolve(mci.name(), "aws-us-east-1", &head).ok());
  ASSERT_TRUE(c.Resolve(mci.name() + "@1", "aws-us-east-1", &pinned).ok());
  EXPECT_EQ(head.setting().instance_type(), "clouds/aws-us-east-1/instanceTypes/c1.medium");
  EXPECT_EQ(pinned.setting().instance_type(), "clouds/aws-us-east-1/instanceTypes/m1.small");
  EXPECT_EQ(pinned.multi_cloud_image(), mci.name() + "@1");
}

// Seed: "Clone a MultiCloud Image".
TEST_F(CatalogTest, CloneProcedureBumpsVersionAndRecordsLineage) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage base = c.Create(account_, "MCI v8");
  ASSERT_TRUE(c.AddSetting(base.name(), "aws-us-east-1", "centos-5-4-x64-v5-6", "m1.large").ok());
  ASSERT_TRUE(c.Tag(base.name(), "provides:rs_agent_type=right_link").ok());
  c.Commit(base.name(), "v8");

  cpb::CloneMultiCloudImageRequest req;
  req.set_name(base.name() + "@1");
  req.set_request_id("clone-once");
  cpb::MultiCloudImage clone;
  ASSERT_TRUE(c.Call(&Stub::CloneMultiCloudImage, req, &clone).ok());
  EXPECT_EQ(clone.display_name(), "MCI v9");
  EXPECT_EQ(clone.origin().kind(), cpb::Origin::CLONED);
  EXPECT_EQ(clone.origin().source(), base.name() + "@1");
  EXPECT_EQ(clone.origin().source_display_name(), "MCI v8");
  EXPECT_EQ(clone.origin().lineage(), base.name());
  EXPECT_EQ(clone.settings_size(), 1);
  EXPECT_THAT(clone.tags(), ::testing::ElementsAre("provides:rs_agent_type=right_link"));
  EXPECT_FALSE(clone.read_only());
  // The answer is the clone as committed.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(clone, c.Get(clone.name())))
      << clone.DebugString() << " vs " << c.Get(clone.name()).DebugString();

  // The same request_id answers the first clone again.
  cpb::MultiCloudImage retried;
  ASSERT_TRUE(c.Call(&Stub::CloneMultiCloudImage, req, &retried).ok());
  EXPECT_EQ(retried.name(), clone.name());

  // The clone's Info shows where it came from; a clone of the clone keeps the lineage.
  cpb::CloneMultiCloudImageRequest again;
  again.set_name(clone.name());
  cpb::MultiCloudImage grandchild;
  ASSERT_TRUE(c.Call(&Stub::CloneMultiCloudImage, again, &grandchild).ok());
  EXPECT_EQ(grandchild.display_name(), "MCI v10");
  EXPECT_EQ(grandchild.origin().source(), clone.name());
  EXPECT_EQ(grandchild.origin().lineage(), base.name());
  EXPECT_EQ(c.Get(grandchild.name()).origin().source_display_name(), "MCI v9");

  // A name without a version gets " v2"; an explicit name wins.
  cpb::MultiCloudImage plain = c.Create(account_, "Base");
  cpb::CloneMultiCloudImageRequest plain_req;
  plain_req.set_name(plain.name());
  cpb::MultiCloudImage plain_clone;
  ASSERT_TRUE(c.Call(&Stub::CloneMultiCloudImage, plain_req, &plain_clone).ok());
  EXPECT_EQ(plain_clone.display_name(), "Base v2");
  plain_req.set_display_name("My own");
  ASSERT_TRUE(c.Call(&Stub::CloneMultiCloudImage, plain_req, &plain_clone).ok());
  EXPECT_EQ(plain_clone.display_name(), "My own");

  cpb::ListMultiCloudImagesRequest list;
  list.set_parent("accounts/" + account_);
  list.set_lineage(base.name());
  cpb::ListMultiCloudImagesResponse lineage;
  ASSERT_TRUE(c.Call(&Stub::ListMultiCloudImages, list, &lineage).ok());
  EXPECT_EQ(lineage.multi_cloud_images_size(), 3);
}

// Seed: "Add New Cloud Support to an MCI": an imported, AWS-only MCI is cloned, given an image in
// another cloud with the same OS, architecture and RightLink version, and tagged.
TEST_F(CatalogTest, AddNewCloudSupportProcedure) {
  CatalogClient c = Client(account_);
  cpb::ImportMultiCloudImageRequest imp =
      ImportOf(account_, "RightImage CentOS 5.4 x64 v5.6", "publications/pub-1",
               "accounts/publisher/multiCloudImages/centos", 3);
  cpb::MultiCloudImage* snap = imp.mutable_snapshot();
  snap->add_tags("provides:rs_agent_type=right_link");
  for (const char* cloud : {"aws-us-east-1", "aws-eu-west-1"}) {
    AddSetting(snap, cloud, "centos-5-4-x64-v5-6", "m1.large");
  }
  cpb::MultiCloudImage imported;
  ASSERT_TRUE(c.Call(&Stub::ImportMultiCloudImage, imp, &imported).ok());
  EXPECT_TRUE(imported.read_only());
  EXPECT_EQ(imported.latest_revision(), 3);  // mirrors the published revision

  // Imported MCIs cannot be edited in place.
  grpc::Status refused =
      c.AddSetting(imported.name(), "google-us-central1", "centos-5-4-x64-v5-6", "n1-standard-2");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("clone it"));

  cpb::CloneMultiCloudImageRequest clone_req;
  clone_req.set_name(imported.name() + "@3");
  clone_req.set_display_name("CentOS 5.4 x64 with Google");
  cpb::MultiCloudImage clone;
  ASSERT_TRUE(c.Call(&Stub::CloneMultiCloudImage, clone_req, &clone).ok());
  EXPECT_EQ(clone.origin().lineage(), "accounts/publisher/multiCloudImages/centos");
  ASSERT_TRUE(
      c.AddSetting(clone.name(), "google-us-central1", "centos-5-4-x64-v5-6", "n1-standard-2")
          .ok());

  cpb::ValidateMultiCloudImageRequest vreq;
  vreq.set_name(clone.name());
  cpb::ValidateMultiCloudImageResponse findings;
  ASSERT_TRUE(c.Call(&Stub::ValidateMultiCloudImage, vreq, &findings).ok());
  EXPECT_EQ(findings.findings_size(), 0) << findings.DebugString();

  cpb::ResolveImageResponse google;
  ASSERT_TRUE(c.Resolve(clone.name(), "google-us-central1", &google).ok());
  EXPECT_EQ(google.setting().instance_type(),
            "clouds/google-us-central1/instanceTypes/n1-standard-2");
  cpb::ResolveImageResponse none;
  grpc::Status uncovered = c.Resolve(imported.name(), "google-us-central1", &none);
  EXPECT_EQ(uncovered.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(uncovered.error_message(), HasSubstr("clouds/aws-eu-west-1, clouds/aws-us-east-1"));
}

// Seed: "Create a Custom RightImage" (catalog half): bundled private images per cloud, shared
// with another account, an MCI built from them and tagged.
TEST_F(CatalogTest, CustomRightImageProcedure) {
  std::string other = account_ + "b", stranger = account_ + "c";
  CatalogClient actor = Client(account_, {R::kActor});
  for (const char* cloud : {"aws-us-east-1", "aws-eu-west-1"}) {
    cpb::RegisterImageRequest reg;
    reg.set_parent(absl::StrCat("clouds/", cloud));
    reg.set_image_id("image-builder-app-a");
    reg.mutable_image()->set_kind(cpb::MACHINE);
    reg.mutable_image()->set_provider_id(absl::StrCat("ami-", account_, std::string(1, cloud[4])));
    reg.mutable_image()->set_os("CentOS 5.4");
    reg.mutable_image()->set_architecture(cpb::X86_64);
    reg.mutable_image()->set_agent_version("5.8");
    reg.mutable_image()->set_display_name("CentOS with App A");
    cpb::Image image;
    ASSERT_TRUE(actor.Call(&Stub::RegisterImage, reg, &image).ok());
    EXPECT_EQ(image.visibility(), cpb::PRIVATE);
    EXPECT_EQ(image.owner(), "accounts/" + account_);
    cpb::ShareImageRequest share;
    share.set_name(image.name());
    share.add_accounts("accounts/" + other);
    ASSERT_TRUE(actor.Call(&Stub::ShareImage, share, &image).ok());
    EXPECT_THAT(image.shared_with(), ::testing::ElementsAre("accounts/" + other));
  }
  CatalogClient designer = Client(account_, {R::kDesigner});
  cpb::MultiCloudImage mci = designer.Create(account_, "App A fast boot v1");
  ASSERT_TRUE(
      designer.AddSetting(mci.name(), "aws-us-east-1", "image-builder-app-a", "m1.large").ok());
  ASSERT_TRUE(
      designer.AddSetting(mci.name(), "aws-eu-west-1", "image-builder-app-a", "m1.large").ok());
  ASSERT_TRUE(designer.Tag(mci.name(), "provides:rs_agent_type=right_link").ok());
  cpb::ValidateMultiCloudImageRequest vreq;
  vreq.set_name(mci.name());
  cpb::ValidateMultiCloudImageResponse findings;
  ASSERT_TRUE(designer.Call(&Stub::ValidateMultiCloudImage, vreq, &findings).ok());
  EXPECT_EQ(findings.findings_size(), 0) << findings.DebugString();

  // The account it was shared with sees and can use the image; a stranger cannot.
  auto list_private = [&](const std::string& account) {
    CatalogClient c = Client(account);
    cpb::ListImagesRequest req;
    req.set_parent("clouds/aws-us-east-1");
    req.set_page_size(1000);
    cpb::ListImagesResponse resp;
    EXPECT_TRUE(c.Call(&Stub::ListImages, req, &resp).ok());
    int found = 0;
    for (const auto& i : resp.images()) {
      if (i.name() == "clouds/aws-us-east-1/images/image-builder-app-a") {
        ++found;
        EXPECT_EQ(i.shared_with_size(), 0);  // only the owner sees whom it is shared with
      }
    }
    return found;
  };
  EXPECT_EQ(list_private(other), 1);
  EXPECT_EQ(list_private(stranger), 0);
  CatalogClient b = Client(other);
  cpb::MultiCloudImage theirs = b.Create(other, "Uses shared image");
  EXPECT_TRUE(b.AddSetting(theirs.name(), "aws-us-east-1", "image-builder-app-a", "m1.large").ok());
  CatalogClient c = Client(stranger);
  cpb::MultiCloudImage mine = c.Create(stranger, "Cannot use it");
  grpc::Status invisible =
      c.AddSetting(mine.name(), "aws-us-east-1", "image-builder-app-a", "m1.large");
  EXPECT_EQ(invisible.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(invisible.error_message(), HasSubstr("not visible to accounts/" + stranger));

  // Only the owner shares.
  cpb::ShareImageRequest reshare;
  reshare.set_name("clouds/aws-us-east-1/images/image-builder-app-a");
  reshare.add_accounts("accounts/" + stranger);
  cpb::Image ignored;
  EXPECT_EQ(Client(other, {R::kActor}).Call(&Stub::ShareImage, reshare, &ignored).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Client(stranger, {R::kActor}).Call(&Stub::ShareImage, reshare, &ignored).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(CatalogTest, UpdateHonoursEtagAndMask) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Etag test");
  cpb::UpdateMultiCloudImageRequest req = Rename(mci.name(), "Renamed", mci.etag());
  cpb::MultiCloudImage updated;
  ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImage, req, &updated).ok());
  EXPECT_EQ(updated.display_name(), "Renamed");
  EXPECT_NE(updated.etag(), mci.etag());

  grpc::Status stale = c.Call(&Stub::UpdateMultiCloudImage, req, &updated);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(stale.error_message(), HasSubstr("stale"));

  req.mutable_multi_cloud_image()->clear_etag();
  req.mutable_update_mask()->add_paths("tags");
  grpc::Status bad_mask = c.Call(&Stub::UpdateMultiCloudImage, req, &updated);
  EXPECT_EQ(bad_mask.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_mask.error_message(), HasSubstr("\"tags\""));

  req.mutable_multi_cloud_image()->set_name(mci.name() + "@1");
  req.mutable_update_mask()->Clear();
  EXPECT_EQ(c.Call(&Stub::UpdateMultiCloudImage, req, &updated).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// Update, AddTags, RemoveTags and Clone send BEGIN with their first statement and COMMIT with
// their last (Pool::TransactInline): a refused one (stale etag, unknown MCI or revision, too many
// tags, a taken id) must leave no transaction open on its pooled connection, and the writes after
// it must land.
TEST_F(CatalogTest, RefusedEditsLeaveNoTransactionOpen) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Inline");
  cpb::UpdateMultiCloudImageRequest req = Rename(mci.name(), "Renamed", "\"stale\"");
  cpb::MultiCloudImage out;
  cpb::AddTagsRequest tags;
  tags.set_name(mci.name());
  for (int i = 0; i < 101; ++i) tags.add_tags(absl::StrCat("ns:many=", i));
  // More refusals than the pool has connections, so that every connection has had one.
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(c.Call(&Stub::UpdateMultiCloudImage, req, &out).error_code(),
              grpc::StatusCode::ABORTED);
    cpb::UpdateMultiCloudImageRequest missing = req;
    missing.mutable_multi_cloud_image()->set_name(mci.name() + "-missing");
    EXPECT_EQ(c.Call(&Stub::UpdateMultiCloudImage, missing, &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(c.Call(&Stub::AddTags, tags, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    // CloneMultiCloudImage likewise: a missing source or revision, a taken id.
    cpb::CloneMultiCloudImageRequest clone;
    clone.set_name(mci.name() + "-missing");
    clone.set_request_id(absl::StrCat("refused-", i));
    EXPECT_EQ(c.Call(&Stub::CloneMultiCloudImage, clone, &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
    clone.set_name(mci.name() + "@9");
    clone.clear_request_id();
    EXPECT_EQ(c.Call(&Stub::CloneMultiCloudImage, clone, &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
    clone.set_name(mci.name());
    clone.set_multi_cloud_image_id(mci.name().substr(mci.name().rfind('/') + 1));
    EXPECT_EQ(c.Call(&Stub::CloneMultiCloudImage, clone, &out).error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
  }
  pqxx::connection pg(stack_->postgres().Url("catalog"));
  pqxx::nontransaction n(pg);
  EXPECT_EQ(n.exec1("SELECT count(*) FROM pg_stat_activity WHERE datname = 'catalog'"
                    " AND state LIKE 'idle in transaction%'")[0]
                .as<int>(),
            0);
  // And the edits after them commit: each one seen by a fresh read.
  req.mutable_multi_cloud_image()->clear_etag();
  for (int i = 0; i < 20; ++i) {
    req.mutable_multi_cloud_image()->set_display_name(absl::StrCat("Renamed ", i));
    ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImage, req, &out).ok());
    EXPECT_EQ(out.display_name(), absl::StrCat("Renamed ", i));
  }
  EXPECT_EQ(n.exec1(absl::StrCat(
                "SELECT display_name FROM mcis WHERE account = ", n.quote(account_),
                " AND mci_id = ", n.quote(mci.name().substr(mci.name().rfind('/') + 1))))[0]
                .as<std::string>(),
            "Renamed 19");
}

TEST_F(CatalogTest, CreateIsIdempotentPerRequestId) {
  CatalogClient c = Client(account_);
  cpb::CreateMultiCloudImageRequest req;
  req.set_parent("accounts/" + account_);
  req.set_request_id("req-1");
  req.mutable_multi_cloud_image()->set_display_name("Once");
  cpb::MultiCloudImage first, second;
  ASSERT_TRUE(c.Call(&Stub::CreateMultiCloudImage, req, &first).ok());
  ASSERT_TRUE(c.Call(&Stub::CreateMultiCloudImage, req, &second).ok());
  EXPECT_EQ(first.name(), second.name());
  req.set_multi_cloud_image_id("named-one");
  req.set_request_id("req-2");
  ASSERT_TRUE(c.Call(&Stub::CreateMultiCloudImage, req, &first).ok());
  EXPECT_EQ(first.name(), "accounts/" + account_ + "/multiCloudImages/named-one");
  req.set_request_id("req-3");
  EXPECT_EQ(c.Call(&Stub::CreateMultiCloudImage, req, &second).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(CatalogTest, RequestIdsOverTheirLengthAreInvalidArgument) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage base = c.Create(account_, "Source");
  const std::string too_long(129, 'r');
  const std::string longest(128, 'r');
  auto expect_refused = [](const grpc::Status& s) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("request_id is longer than 128"));
  };
  cpb::MultiCloudImage out;
  cpb::CreateMultiCloudImageRequest create;
  create.set_parent("accounts/" + account_);
  create.mutable_multi_cloud_image()->set_display_name("Long");
  create.set_request_id(too_long);
  expect_refused(c.Call(&Stub::CreateMultiCloudImage, create, &out));

  cpb::CloneMultiCloudImageRequest clone;
  clone.set_name(base.name());
  clone.set_request_id(too_long);
  expect_refused(c.Call(&Stub::CloneMultiCloudImage, clone, &out));
  clone.set_request_id(longest);
  grpc::Status cloned = c.Call(&Stub::CloneMultiCloudImage, clone, &out);
  ASSERT_TRUE(cloned.ok()) << cloned.error_message();

  cpb::ImportMultiCloudImageRequest imp = ImportOf(account_, "Imported", "publications/pub-long",
                                                   "accounts/publisher/multiCloudImages/long", 1);
  imp.set_request_id(too_long);
  AddSetting(imp.mutable_snapshot(), "aws-us-east-1", "centos-5-4-x64-v5-6", "m1.large");
  expect_refused(c.Call(&Stub::ImportMultiCloudImage, imp, &out));
  imp.set_request_id(longest);
  grpc::Status imported = c.Call(&Stub::ImportMultiCloudImage, imp, &out);
  ASSERT_TRUE(imported.ok()) << imported.error_message();

  cpb::DeleteMultiCloudImageRequest del;
  del.set_name(base.name());
  del.set_request_id(too_long);
  google::protobuf::Empty empty;
  expect_refused(c.Call(&Stub::DeleteMultiCloudImage, del, &empty));
}

TEST_F(CatalogTest, ListPagesAndFilters) {
  CatalogClient c = Client(account_);
  std::set<std::string> created;
  for (int i = 0; i < 7; ++i) {
    cpb::MultiCloudImage m = c.Create(account_, absl::StrCat(i % 2 ? "Odd" : "Even", " image ", i));
    created.insert(m.name());
    if (i % 3 == 0) {
      ASSERT_TRUE(c.Tag(m.name(), "team:owner=web").ok());
      ASSERT_TRUE(c.AddSetting(m.name(), "aws-eu-west-1", "centos-5-4-i386-v5-6", "m1.small").ok());
    }
  }
  cpb::ListMultiCloudImagesRequest req;
  req.set_parent("accounts/" + account_);
  req.set_page_size(3);
  std::set<std::string> seen;
  int pages = 0;
  do {
    cpb::ListMultiCloudImagesResponse resp;
    ASSERT_TRUE(c.Call(&Stub::ListMultiCloudImages, req, &resp).ok());
    for (const auto& m : resp.multi_cloud_images()) EXPECT_TRUE(seen.insert(m.name()).second);
    req.set_page_token(resp.next_page_token());
    ++pages;
  } while (!req.page_token().empty() && pages < 10);
  EXPECT_EQ(seen, created);
  EXPECT_EQ(pages, 3);

  auto count = [&](cpb::ListMultiCloudImagesRequest r) {
    r.set_parent("accounts/" + account_);
    cpb::ListMultiCloudImagesResponse resp;
    grpc::Status s = c.Call(&Stub::ListMultiCloudImages, r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.multi_cloud_images_size();
  };
  cpb::ListMultiCloudImagesRequest by_tag;
  by_tag.set_tag("team:owner=web");
  EXPECT_EQ(count(by_tag), 3);
  cpb::ListMultiCloudImagesRequest by_cloud;
  by_cloud.set_cloud("clouds/aws-eu-west-1");
  EXPECT_EQ(count(by_cloud), 3);
  cpb::ListMultiCloudImagesRequest by_name;
  by_name.set_display_name("odd");
  EXPECT_EQ(count(by_name), 3);
  cpb::ListMultiCloudImagesRequest by_origin;
  by_origin.set_origin_kind(cpb::Origin::CLONED);
  EXPECT_EQ(count(by_origin), 0);

  cpb::ListMultiCloudImagesRequest bad;
  bad.set_parent("accounts/" + account_);
  bad.set_page_token("garbage");
  cpb::ListMultiCloudImagesResponse ignored;
  EXPECT_EQ(c.Call(&Stub::ListMultiCloudImages, bad, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A token is bound to its filters.
  req.set_page_token("");
  cpb::ListMultiCloudImagesResponse first;
  ASSERT_TRUE(c.Call(&Stub::ListMultiCloudImages, req, &first).ok());
  by_tag.set_parent("accounts/" + account_);
  by_tag.set_page_token(first.next_page_token());
  EXPECT_EQ(c.Call(&Stub::ListMultiCloudImages, by_tag, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CatalogTest, RevisionsAreImmutableAndListedNewestFirst) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Revisions");
  grpc::Status empty;
  c.Commit(mci.name(), "nothing", &empty);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(empty.error_message(), HasSubstr("add a setting"));
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  c.Commit(mci.name(), "one");
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-west-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  c.Commit(mci.name(), "two");
  cpb::ListMultiCloudImageRevisionsRequest req;
  req.set_name(mci.name());
  cpb::ListMultiCloudImageRevisionsResponse resp;
  ASSERT_TRUE(c.Call(&Stub::ListMultiCloudImageRevisions, req, &resp).ok());
  ASSERT_EQ(resp.multi_cloud_images_size(), 2);
  EXPECT_EQ(resp.multi_cloud_images(0).revision(), 2);
  EXPECT_EQ(resp.multi_cloud_images(0).commit_message(), "two");
  EXPECT_EQ(resp.multi_cloud_images(0).clouds_size(), 2);
  EXPECT_EQ(resp.multi_cloud_images(1).clouds_size(), 1);
  EXPECT_EQ(c.Get(mci.name()).latest_revision(), 2);
  grpc::Status missing;
  c.Get(mci.name() + "@9", &missing);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  cpb::ListMultiCloudImageSettingsRequest settings;
  settings.set_parent(mci.name() + "@1");
  cpb::ListMultiCloudImageSettingsResponse s1;
  ASSERT_TRUE(c.Call(&Stub::ListMultiCloudImageSettings, settings, &s1).ok());
  EXPECT_EQ(s1.settings_size(), 1);
}

TEST_F(CatalogTest, SettingRulesRejectBadInputWithActionableMessages) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Rules");
  struct Case {
    std::string cloud, image, type, kernel;
    std::string user_data;
    std::string expect;
  };
  std::vector<Case> cases = {
      // The instance type must support the image's architecture (names both).
      {"aws-us-east-1", "clouds/aws-us-east-1/images/centos-5-4-x64-v5-6",
       "clouds/aws-us-east-1/instanceTypes/m1.small", "", "",
       "m1.small supports i386 (32-bit) images only, but image "
       "clouds/aws-us-east-1/images/centos-5-4-x64-v5-6 is x86_64"},
      {"aws-us-east-1", "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6",
       "clouds/aws-us-east-1/instanceTypes/m2.2xlarge", "", "", "m2.2xlarge supports x86_64"},
      // Images are cloud-specific.
      {"aws-us-east-1", "clouds/aws-eu-west-1/images/centos-5-4-i386-v5-6",
       "clouds/aws-us-east-1/instanceTypes/m1.small", "", "", "belongs to clouds/aws-eu-west-1"},
      {"aws-us-east-1", "clouds/aws-us-east-1/images/nope",
       "clouds/aws-us-east-1/instanceTypes/m1.small", "", "", "does not exist"},
      {"aws-us-east-1", "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6",
       "clouds/aws-us-east-1/instanceTypes/t9.huge", "", "", "t9.huge does not exist"},
      {"aws-us-east-1", "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6",
       "clouds/aws-us-east-1/instanceTypes/m1.small",
       "clouds/aws-us-east-1/images/ramdisk-2-6-18-i386", "", "is a RAMDISK image"},
      {"aws-us-east-1", "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6",
       "clouds/aws-us-east-1/instanceTypes/m1.small", "", std::string(16 * 1024 + 1, 'x'),
       "16 KiB"},
      {"mars-1", "clouds/mars-1/images/x", "clouds/mars-1/instanceTypes/y", "", "",
       "clouds/mars-1 does not exist"},
      {"", "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6",
       "clouds/aws-us-east-1/instanceTypes/m1.small", "", "", "setting.cloud is required"},
      {"aws-us-east-1", "", "clouds/aws-us-east-1/instanceTypes/m1.small", "", "",
       "setting.image is required"},
      {"aws-us-east-1", "ami-123", "clouds/aws-us-east-1/instanceTypes/m1.small", "", "",
       "not a valid name"},
  };
  for (const Case& k : cases) {
    cpb::CreateMultiCloudImageSettingRequest req;
    req.set_parent(mci.name());
    if (!k.cloud.empty()) req.mutable_setting()->set_cloud("clouds/" + k.cloud);
    req.mutable_setting()->set_image(k.image);
    req.mutable_setting()->set_instance_type(k.type);
    req.mutable_setting()->set_kernel_image(k.kernel);
    req.mutable_setting()->set_user_data(k.user_data);
    cpb::MultiCloudImageSetting out;
    grpc::Status s = c.Call(&Stub::CreateMultiCloudImageSetting, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << k.expect;
    EXPECT_THAT(s.error_message(), HasSubstr(k.expect));
  }
  // Exactly 16 KiB of user data, a kernel and a ramdisk of the right kinds are fine.
  cpb::CreateMultiCloudImageSettingRequest ok;
  ok.set_parent(mci.name());
  ok.mutable_setting()->set_cloud("clouds/aws-us-east-1");
  ok.mutable_setting()->set_image("clouds/aws-us-east-1/images/centos-5-4-i386-v5-6");
  ok.mutable_setting()->set_instance_type("clouds/aws-us-east-1/instanceTypes/m1.small");
  ok.mutable_setting()->set_kernel_image("clouds/aws-us-east-1/images/kernel-2-6-18-i386");
  ok.mutable_setting()->set_ramdisk_image("clouds/aws-us-east-1/images/ramdisk-2-6-18-i386");
  ok.mutable_setting()->set_user_data(std::string(16 * 1024, 'x'));
  cpb::MultiCloudImageSetting out;
  ASSERT_TRUE(c.Call(&Stub::CreateMultiCloudImageSetting, ok, &out).ok());
  cpb::ResolveImageResponse resolved;
  ASSERT_TRUE(c.Resolve(mci.name(), "aws-us-east-1", &resolved).ok());
  EXPECT_EQ(resolved.kernel_provider_id().rfind("aki-", 0), 0u);
  EXPECT_EQ(resolved.ramdisk_provider_id().rfind("ari-", 0), 0u);
  EXPECT_EQ(resolved.setting().user_data().size(), 16u * 1024);
}

TEST_F(CatalogTest, BadNamesTagsAndPagesAreInvalidArgument) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Tags");
  for (const char* tag : {"no-colon", "ns:pred", "ns:=v", ":p=v", "ns:p=", "n s:p=v"}) {
    grpc::Status s = c.Tag(mci.name(), tag);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << tag;
    EXPECT_THAT(s.error_message(), HasSubstr("namespace:predicate=value"));
  }
  for (const char* name :
       {"", "mcis/x", "accounts/a/multiCloudImages/", "accounts/a/multiCloudImages/X",
        "accounts/a/multiCloudImages/x@0", "accounts/a/multiCloudImages/x@-1"}) {
    grpc::Status s;
    c.Get(name, &s);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
  }
  cpb::CreateMultiCloudImageRequest create;
  create.set_parent("accounts/" + account_);
  cpb::MultiCloudImage out;
  grpc::Status no_name = c.Call(&Stub::CreateMultiCloudImage, create, &out);
  EXPECT_EQ(no_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(no_name.error_message(), HasSubstr("display_name is required"));
  cpb::ListMultiCloudImagesRequest list;
  list.set_parent("accounts/" + account_);
  list.set_page_size(-1);
  cpb::ListMultiCloudImagesResponse resp;
  EXPECT_EQ(c.Call(&Stub::ListMultiCloudImages, list, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Removing a tag works and is reflected.
  ASSERT_TRUE(c.Tag(mci.name(), "a:b=c").ok());
  cpb::RemoveTagsRequest remove;
  remove.set_name(mci.name());
  remove.add_tags("a:b=c");
  ASSERT_TRUE(c.Call(&Stub::RemoveTags, remove, &out).ok());
  EXPECT_EQ(out.tags_size(), 0);
}

TEST_F(CatalogTest, AnotherAccountsMultiCloudImagesAreNotFound) {
  CatalogClient a = Client(account_);
  cpb::MultiCloudImage mci = a.Create(account_, "Private");
  ASSERT_TRUE(a.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  CatalogClient b = Client(account_ + "x");
  grpc::Status s;
  b.Get(mci.name(), &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  cpb::ResolveImageResponse r;
  EXPECT_EQ(b.Resolve(mci.name(), "aws-us-east-1", &r).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(b.Tag(mci.name(), "a:b=c").error_code(), grpc::StatusCode::NOT_FOUND);
  cpb::CloneMultiCloudImageRequest clone;
  clone.set_name(mci.name());
  cpb::MultiCloudImage out;
  EXPECT_EQ(b.Call(&Stub::CloneMultiCloudImage, clone, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  cpb::DeleteMultiCloudImageRequest del;
  del.set_name(mci.name());
  google::protobuf::Empty empty;
  EXPECT_EQ(b.Call(&Stub::DeleteMultiCloudImage, del, &empty).error_code(),
            grpc::StatusCode::NOT_FOUND);
  cpb::ListMultiCloudImagesRequest list;
  list.set_parent("accounts/" + account_);
  cpb::ListMultiCloudImagesResponse resp;
  EXPECT_EQ(b.Call(&Stub::ListMultiCloudImages, list, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  cpb::CreateMultiCloudImageRequest create;
  create.set_parent("accounts/" + account_);
  create.mutable_multi_cloud_image()->set_display_name("Intruder");
  EXPECT_EQ(b.Call(&Stub::CreateMultiCloudImage, create, &out).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(CatalogTest, RolesGateWrites) {
  CatalogClient observer = Client(account_, {R::kObserver});
  cpb::CreateMultiCloudImageRequest create;
  create.set_parent("accounts/" + account_);
  create.mutable_multi_cloud_image()->set_display_name("Nope");
  cpb::MultiCloudImage out;
  grpc::Status denied = observer.Call(&Stub::CreateMultiCloudImage, create, &out);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("designer"));

  cpb::RegisterImageRequest reg;
  reg.set_parent("clouds/aws-us-east-1");
  reg.mutable_image()->set_kind(cpb::MACHINE);
  reg.mutable_image()->set_provider_id("ami-roles");
  reg.mutable_image()->set_architecture(cpb::I386);
  cpb::Image image;
  EXPECT_EQ(Client(account_, {R::kDesigner}).Call(&Stub::RegisterImage, reg, &image).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  cpb::RegisterCloudRequest cloud;
  cloud.mutable_cloud()->set_name("clouds/aws-" + account_);
  cloud.mutable_cloud()->set_display_name("AWS new region");
  cloud.mutable_cloud()->set_provider("aws");
  cpb::InstanceType* t = cloud.add_instance_types();
  t->set_name("m1.small");
  t->add_architectures(cpb::I386);
  cpb::Cloud registered;
  EXPECT_EQ(
      Client(account_, {R::kDesigner}).Call(&Stub::RegisterCloud, cloud, &registered).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  CatalogClient admin = Client(account_, {R::kAdmin});
  ASSERT_TRUE(admin.Call(&Stub::RegisterCloud, cloud, &registered).ok());
  EXPECT_EQ(admin.Call(&Stub::RegisterCloud, cloud, &registered).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  cpb::ListInstanceTypesRequest types;
  types.set_parent(cloud.cloud().name());
  cpb::ListInstanceTypesResponse listed;
  ASSERT_TRUE(observer.Call(&Stub::ListInstanceTypes, types, &listed).ok());
  ASSERT_EQ(listed.instance_types_size(), 1);
  EXPECT_EQ(listed.instance_types(0).name(), cloud.cloud().name() + "/instanceTypes/m1.small");
}

TEST_F(CatalogTest, ResolveFollowsWritesAtOnce) {
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Hot path");
  cpb::ResolveImageResponse r;
  EXPECT_EQ(c.Resolve(mci.name(), "aws-us-east-1", &r).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(c.AddSetting(mci.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  ASSERT_TRUE(c.Resolve(mci.name(), "aws-us-east-1", &r).ok());
  EXPECT_EQ(r.setting().image(), "clouds/aws-us-east-1/images/centos-5-4-i386-v5-6");
  ASSERT_TRUE(c.Resolve(mci.name(), "aws-us-east-1", &r).ok());  // cached

  cpb::UpdateMultiCloudImageSettingRequest edit;
  edit.mutable_setting()->set_name(mci.name() + "/settings/aws-us-east-1");
  edit.mutable_setting()->set_image("clouds/aws-us-east-1/images/ubuntu-10-04-i386-v5-8");
  edit.mutable_update_mask()->add_paths("image");
  cpb::MultiCloudImageSetting out;
  ASSERT_TRUE(c.Call(&Stub::UpdateMultiCloudImageSetting, edit, &out).ok());
  ASSERT_TRUE(c.Resolve(mci.name(), "aws-us-east-1", &r).ok());
  EXPECT_EQ(r.setting().image(), "clouds/aws-us-east-1/images/ubuntu-10-04-i386-v5-8");

  cpb::DeleteMultiCloudImageSettingRequest del;
  del.set_name(mci.name() + "/settings/aws-us-east-1");
  google::protobuf::Empty empty;
  ASSERT_TRUE(c.Call(&Stub::DeleteMultiCloudImageSetting, del, &empty).ok());
  grpc::Status gone = c.Resolve(mci.name(), "aws-us-east-1", &r);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(gone.error_message(), HasSubstr("supports no clouds yet"));
}

TEST_F(CatalogTest, ValidateReportsEveryFindingKind) {
  CatalogClient c = Client(account_);
  // No clouds, no tag.
  cpb::MultiCloudImage empty = c.Create(account_, "Empty");
  cpb::ValidateMultiCloudImageRequest vreq;
  vreq.set_name(empty.name());
  cpb::ValidateMultiCloudImageResponse resp;
  ASSERT_TRUE(c.Call(&Stub::ValidateMultiCloudImage, vreq, &resp).ok());
  std::set<std::string> codes;
  for (const auto& f : resp.findings()) codes.insert(f.code());
  EXPECT_EQ(codes, (std::set<std::string>{"MISSING_AGENT_TAG", "NO_CLOUDS"}));

  // Mixed OS, architecture and agent version.
  cpb::MultiCloudImage mixed = c.Create(account_, "Mixed");
  ASSERT_TRUE(c.AddSetting(mixed.name(), "aws-us-east-1", "centos-5-4-i386-v5-6", "m1.small").ok());
  ASSERT_TRUE(
      c.AddSetting(mixed.name(), "aws-us-west-1", "ubuntu-10-04-x64-v5-8", "m1.large").ok());
  ASSERT_TRUE(c.Tag(mixed.name(), "provides:rs_agent_type=right_link").ok());
  vreq.set_name(mixed.name());
  resp.Clear();
  ASSERT_TRUE(c.Call(&Stub::ValidateMultiCloudImage, vreq, &resp).ok());
  codes.clear();
  for (const auto& f : resp.findings()) codes.insert(f.code());
  EXPECT_EQ(codes,
            (std::set<std::string>{"MIXED_OS", "MIXED_ARCHITECTURE", "MIXED_AGENT_VERSION"}));

  // An imported MCI can carry what settings would refuse: an instance type that does not fit
  // its image, and another account's private image that is not shared.
  std::string owner = account_ + "owner";
  cpb::RegisterImageRequest reg;
  reg.set_parent("clouds/aws-us-east-1");
  reg.set_image_id("private-one");
  reg.mutable_image()->set_kind(cpb::MACHINE);
  reg.mutable_image()->set_provider_id("ami-private-" + account_);
  reg.mutable_image()->set_architecture(cpb::X86_64);
  cpb::Image image;
  ASSERT_TRUE(Client(owner, {R::kActor}).Call(&Stub::RegisterImage, reg, &image).ok());
  cpb::ImportMultiCloudImageRequest imp = ImportOf(account_, "Imported", "publications/p",
                                                   "accounts/" + owner + "/multiCloudImages/x", 1);
  cpb::MultiCloudImage* snap = imp.mutable_snapshot();
  snap->add_tags("provides:rs_agent_type=right_link");
  cpb::MultiCloudImageSetting* s1 = snap->add_settings();  // the other account's image
  s1->set_cloud("clouds/aws-us-east-1");
  s1->set_image(image.name());
  s1->set_instance_type("clouds/aws-us-east-1/instanceTypes/m1.large");
  AddSetting(snap, "aws-us-west-1", "centos-5-4-x64-v5-6", "m1.small");
  cpb::MultiCloudImage imported;
  ASSERT_TRUE(c.Call(&Stub::ImportMultiCloudImage, imp, &imported).ok());
  vreq.set_name(imported.name());
  resp.Clear();
  ASSERT_TRUE(c.Call(&Stub::ValidateMultiCloudImage, vreq, &resp).ok());
  codes.clear();
  for (const auto& f : resp.findings()) codes.insert(f.code());
  EXPECT_TRUE(codes.count("IMAGE_NOT_SHARED")) << resp.DebugString();
  EXPECT_TRUE(codes.count("INSTANCE_TYPE_MISMATCH")) << resp.DebugString();

  // Updating the import brings a newer revision; an older one is refused.
  imp.set_name(imported.name());
  snap->mutable_origin()->set_source_revision(2);
  snap->set_description("second");
  cpb::MultiCloudImage updated;
  ASSERT_TRUE(c.Call(&Stub::ImportMultiCloudImage, imp, &updated).ok());
  EXPECT_EQ(updated.latest_revision(), 2);
  EXPECT_EQ(updated.description(), "second");
  snap->mutable_origin()->set_source_revision(1);
  EXPECT_EQ(c.Call(&Stub::ImportMultiCloudImage, imp, &updated).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Client(account_, {R::kLibrary})
                .Call(&Stub::ImportMultiCloudImage, imp, &updated)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(CatalogTest, DeleteWithoutTemplateServiceIsUnavailableAndEditsAreRefused) {
  // This suite runs no template-reference service: the saga cannot reserve, so the MCI stays
  // DELETING (the recovery loop retries) and edits are refused meanwhile.
  CatalogClient c = Client(account_);
  cpb::MultiCloudImage mci = c.Create(account_, "Undeletable for now");
  cpb::DeleteMultiCloudImageRequest del;
  del.set_name(mci.name());
  google::protobuf::Empty empty;
  grpc::Status s = c.Call(&Stub::DeleteMultiCloudImage, del, &empty);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(c.Get(mci.name()).state(), cpb::MultiCloudImage::DELETING);
  grpc::Status edit = c.Tag(mci.name(), "a:b=c");
  EXPECT_EQ(edit.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(edit.error_message(), HasSubstr("being deleted"));
  del.set_name(mci.name() + "@1");
  EXPECT_EQ(c.Call(&Stub::DeleteMultiCloudImage, del, &empty).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace mci::testing
