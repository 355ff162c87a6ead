#include "services/marketplace/marketplace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/unit/marketplace/fakes.h"

namespace mci::marketplace {
namespace {

using catalog::v1::MultiCloudImage;
using catalog::v1::Origin;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

auth::Caller CallerOf(const std::string& account, std::set<auth::Role> roles) {
  // The fake catalog takes the account id as the token.
  return auth::Caller{"user@" + account, account, std::move(roles), account};
}

catalog::v1::MultiCloudImageSetting Setting(const std::string& cloud, const std::string& image) {
  catalog::v1::MultiCloudImageSetting s;
  s.set_cloud("clouds/" + cloud);
  s.set_image(absl::StrCat("clouds/", cloud, "/images/", image));
  s.set_instance_type(absl::StrCat("clouds/", cloud, "/instanceTypes/m1.small"));
  return s;
}

class MarketplaceTest : public ::testing::Test {
 protected:
  // Stores revision N (and HEAD equal to it) of accounts/{account}/multiCloudImages/{id}.
  void Commit(const std::string& account, const std::string& id, int64_t revision,
              std::vector<catalog::v1::MultiCloudImageSetting> settings,
              Origin::Kind kind = Origin::CREATED, const std::string& description = "base") {
    MultiCloudImage mci;
    std::string head = absl::StrCat("accounts/", account, "/multiCloudImages/", id);
    mci.set_name(head);
    mci.set_display_name("CentOS 5.4 x64");
    mci.set_description(description);
    mci.add_tags("provides:rs_agent_type=right_link");
    mci.mutable_origin()->set_kind(kind);
    mci.mutable_origin()->set_lineage(head);
    if (kind == Origin::IMPORTED) {
      mci.mutable_origin()->set_source("publications/elsewhere");
    }
    mci.set_latest_revision(revision);
    for (auto& s : settings) *mci.add_settings() = s;
    catalog_.Put(mci);
    mci.set_name(absl::StrCat(head, "@", revision));
    mci.set_revision(revision);
    catalog_.Put(mci);
  }

  absl::StatusOr<v1::PublishMultiCloudImageResponse> Publish(
      const std::string& name, v1::Visibility visibility = v1::PUBLIC,
      std::vector<std::string> shared_with = {}, bool allow_head = false) {
    v1::PublishMultiCloudImageRequest request;
    request.set_multi_cloud_image(name);
    request.set_visibility(visibility);
    request.set_allow_head(allow_head);
    for (auto& a : shared_with) request.add_shared_with(a);
    v1::PublishMultiCloudImageResponse response;
    absl::Status s = marketplace_.PublishMultiCloudImage(publisher_, request, &response);
    if (!s.ok()) return s;
    return response;
  }

  absl::StatusOr<MultiCloudImage> Import(const auth::Caller& caller, const std::string& name) {
    v1::ImportPublicationRequest request;
    request.set_name(name);
    MultiCloudImage response;
    absl::Status s = marketplace_.ImportPublication(caller, request, &response);
    if (!s.ok()) return s;
    return response;
  }

  testing::FakeRepository repository_;
  testing::FakeCatalog catalog_;
  Marketplace marketplace_{&repository_, &catalog_};
  auth::Caller publisher_ = CallerOf("a", {auth::Role::kDesigner, auth::Role::kPublisher});
  auth::Caller library_ = CallerOf("b", {auth::Role::kDesigner, auth::Role::kLibrary});
  auth::Caller stranger_ = CallerOf("c", {auth::Role::kLibrary});
};

TEST_F(MarketplaceTest, PublishesACommittedRevisionAsAFrozenSnapshot) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto published = Publish("accounts/a/multiCloudImages/centos@1");
  ASSERT_TRUE(published.ok()) << published.status();
  const v1::Publication& p = published->publication();
  EXPECT_EQ(p.multi_cloud_image(), "accounts/a/multiCloudImages/centos@1");
  EXPECT_EQ(p.revision(), 1);
  EXPECT_EQ(p.publisher(), "accounts/a");
  EXPECT_EQ(p.lineage(), "accounts/a/multiCloudImages/centos");
  EXPECT_THAT(p.snapshot().settings(), SizeIs(1));
  EXPECT_THAT(published->warnings(), IsEmpty());

  // Later edits of the source do not reach the publication.
  catalog_.mcis.erase("accounts/a/multiCloudImages/centos@1");
  catalog_.mcis.erase("accounts/a/multiCloudImages/centos");
  v1::GetPublicationRequest get;
  get.set_name(p.name());
  v1::Publication read;
  ASSERT_TRUE(marketplace_.GetPublication(library_, get, &read).ok());
  EXPECT_EQ(read.snapshot().settings(0).image(), "clouds/aws-us-east-1/images/rightimage-x64");
}

TEST_F(MarketplaceTest, RefusesHeadWithoutTheFlagAndWarnsWithIt) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto refused = Publish("accounts/a/multiCloudImages/centos");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("allow_head"));

  auto head = Publish("accounts/a/multiCloudImages/centos", v1::PUBLIC, {}, true);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->publication().revision(), 0);
  ASSERT_THAT(head->warnings(), SizeIs(1));
  EXPECT_EQ(head->warnings(0).code(), "HEAD_PUBLISHED");
}

TEST_F(MarketplaceTest, PublishesEachRevisionOnce) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  ASSERT_TRUE(Publish("accounts/a/multiCloudImages/centos@1").ok());
  auto again = Publish("accounts/a/multiCloudImages/centos@1");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(MarketplaceTest, RetryWithTheSameRequestIdReturnsTheFirstPublication) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  v1::PublishMultiCloudImageRequest request;
  request.set_multi_cloud_image("accounts/a/multiCloudImages/centos@1");
  request.set_visibility(v1::PUBLIC);
  request.set_request_id("r-1");
  v1::PublishMultiCloudImageResponse first, second;
  ASSERT_TRUE(marketplace_.PublishMultiCloudImage(publisher_, request, &first).ok());
  ASSERT_TRUE(marketplace_.PublishMultiCloudImage(publisher_, request, &second).ok());
  EXPECT_EQ(first.publication().name(), second.publication().name());
}

TEST_F(MarketplaceTest, RefusesAnImportedMultiCloudImage) {
  Commit("a", "imported", 3, {Setting("aws-us-east-1", "rightimage-x64")}, Origin::IMPORTED);
  auto refused = Publish("accounts/a/multiCloudImages/imported@3");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("Clone it"));
}

TEST_F(MarketplaceTest, AnotherAccountsMultiCloudImageIsNotFound) {
  Commit("b", "theirs", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto refused = Publish("accounts/b/multiCloudImages/theirs@1");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(MarketplaceTest, ValidatesTheAudience) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  EXPECT_EQ(
      Publish("accounts/a/multiCloudImages/centos@1", v1::VISIBILITY_UNSPECIFIED).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Publish("accounts/a/multiCloudImages/centos@1", v1::SHARED).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Publish("accounts/a/multiCloudImages/centos@1", v1::SHARED, {"b"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Publish("accounts/a/multiCloudImages/centos@1", v1::PUBLIC, {"accounts/b"}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(MarketplaceTest, WarnsAboutPrivateImagesNotSharedWithTheTargets) {
  catalog::v1::Image image;
  image.set_name("clouds/openstack-private/images/golden");
  image.set_visibility(catalog::v1::PRIVATE);
  image.set_owner("accounts/a");
  image.add_shared_with("accounts/b");
  catalog_.images.push_back(image);
  Commit("a", "golden", 1, {Setting("openstack-private", "golden")});
  auto published =
      Publish("accounts/a/multiCloudImages/golden@1", v1::SHARED, {"accounts/b", "accounts/c"});
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_THAT(published->warnings(), SizeIs(1));
  EXPECT_EQ(published->warnings(0).code(), "PRIVATE_IMAGE_NOT_SHARED");
  EXPECT_THAT(published->warnings(0).message(), HasSubstr("accounts/c"));
  EXPECT_THAT(published->warnings(0).message(), ::testing::Not(HasSubstr("accounts/b,")));
  EXPECT_THAT(published->publication().shared_with(), ElementsAre("accounts/b", "accounts/c"));
}

TEST_F(MarketplaceTest, APublicationNotSharedWithTheCallerIsNotFound) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto published = Publish("accounts/a/multiCloudImages/centos@1", v1::SHARED, {"accounts/b"});
  ASSERT_TRUE(published.ok()) << published.status();
  const std::string name = published->publication().name();

  v1::GetPublicationRequest get;
  get.set_name(name);
  v1::Publication read;
  EXPECT_TRUE(marketplace_.GetPublication(library_, get, &read).ok());
  EXPECT_THAT(read.shared_with(), IsEmpty()) << "only the publisher sees the audience";
  EXPECT_EQ(marketplace_.GetPublication(stranger_, get, &read).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Import(stranger_, name).status().code(), absl::StatusCode::kNotFound);

  v1::ListPublicationsRequest list;
  v1::ListPublicationsResponse listed;
  ASSERT_TRUE(marketplace_.ListPublications(stranger_, list, &listed).ok());
  EXPECT_THAT(listed.publications(), IsEmpty());
}

TEST_F(MarketplaceTest, ImportsOnceAndMirrorsThePublishedRevision) {
  Commit("a", "centos", 2, {Setting("aws-us-east-1", "rightimage-x64")});
  auto published = Publish("accounts/a/multiCloudImages/centos@2");
  ASSERT_TRUE(published.ok());
  auto first = Import(library_, published->publication().name());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Import(library_, published->publication().name());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->name(), second->name());
  ASSERT_THAT(catalog_.import_calls, SizeIs(1));
  const auto& snapshot = catalog_.import_calls[0].snapshot();
  EXPECT_EQ(snapshot.origin().kind(), Origin::IMPORTED);
  EXPECT_EQ(snapshot.origin().source(), published->publication().name());
  EXPECT_EQ(snapshot.origin().publication(), published->publication().name());
  EXPECT_EQ(snapshot.origin().source_revision(), 2);
  EXPECT_EQ(snapshot.origin().lineage(), "accounts/a/multiCloudImages/centos");
  EXPECT_EQ(catalog_.import_calls[0].parent(), "accounts/b");
  EXPECT_TRUE(catalog_.import_calls[0].name().empty());
}

TEST_F(MarketplaceTest, ReimportsAfterTheFirstImportWasDeleted) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto published = Publish("accounts/a/multiCloudImages/centos@1");
  ASSERT_TRUE(published.ok());
  auto first = Import(library_, published->publication().name());
  ASSERT_TRUE(first.ok());
  catalog_.mcis.erase(first->name());
  auto second = Import(library_, published->publication().name());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->name(), second->name());
  ASSERT_THAT(catalog_.import_calls, SizeIs(2));
  EXPECT_NE(catalog_.import_calls[0].request_id(), catalog_.import_calls[1].request_id());
}

TEST_F(MarketplaceTest, ListsComparesAndBringsInAnUpdate) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto rev1 = Publish("accounts/a/multiCloudImages/centos@1");
  ASSERT_TRUE(rev1.ok());
  auto imported = Import(library_, rev1->publication().name());
  ASSERT_TRUE(imported.ok());

  Commit("a", "centos", 2,
         {Setting("aws-us-east-1", "rightimage-x64"), Setting("aws-us-west-1", "rightimage-x64")},
         Origin::CREATED, "now with us-west-1");
  auto rev2 = Publish("accounts/a/multiCloudImages/centos@2");
  ASSERT_TRUE(rev2.ok());

  v1::ListAvailableUpdatesRequest updates_request;
  updates_request.set_multi_cloud_image(imported->name());
  v1::ListAvailableUpdatesResponse updates;
  ASSERT_TRUE(marketplace_.ListAvailableUpdates(library_, updates_request, &updates).ok());
  EXPECT_EQ(updates.current_revision(), 1);
  ASSERT_THAT(updates.publications(), SizeIs(1));
  EXPECT_EQ(updates.publications(0).name(), rev2->publication().name());

  v1::ComparePublicationRequest compare_request;
  compare_request.set_name(rev2->publication().name());
  compare_request.set_multi_cloud_image(imported->name());
  v1::ComparePublicationResponse diff;
  ASSERT_TRUE(marketplace_.ComparePublication(library_, compare_request, &diff).ok());
  ASSERT_THAT(diff.setting_changes(), SizeIs(1));
  EXPECT_EQ(diff.setting_changes(0).cloud(), "clouds/aws-us-west-1");
  EXPECT_EQ(diff.setting_changes(0).kind(), v1::ADDED);
  EXPECT_EQ(diff.description().target(), "now with us-west-1");
  EXPECT_EQ(diff.base_revision(), 1);
  EXPECT_EQ(diff.target_revision(), 2);

  v1::UpdateImportedMultiCloudImageRequest update;
  update.set_multi_cloud_image(imported->name());
  MultiCloudImage updated;
  auto observer_only = CallerOf("b", {auth::Role::kLibrary});
  EXPECT_EQ(marketplace_.UpdateImportedMultiCloudImage(observer_only, update, &updated).code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(marketplace_.UpdateImportedMultiCloudImage(library_, update, &updated).ok());
  EXPECT_EQ(updated.name(), imported->name());
  EXPECT_EQ(updated.origin().source_revision(), 2);
  EXPECT_THAT(updated.settings(), SizeIs(2));
  EXPECT_EQ(catalog_.import_calls.back().name(), imported->name());

  // Up to date now.
  v1::ListAvailableUpdatesResponse after;
  ASSERT_TRUE(marketplace_.ListAvailableUpdates(library_, updates_request, &after).ok());
  EXPECT_EQ(after.current_revision(), 2);
  EXPECT_THAT(after.publications(), IsEmpty());
  EXPECT_EQ(marketplace_.UpdateImportedMultiCloudImage(library_, update, &updated).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(MarketplaceTest, ComparesTwoPublicationsOrRefusesAnAmbiguousBase) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto rev1 = Publish("accounts/a/multiCloudImages/centos@1");
  ASSERT_TRUE(rev1.ok());
  Commit("a", "centos", 2, {Setting("aws-us-east-1", "rightimage-x64-v2")});
  auto rev2 = Publish("accounts/a/multiCloudImages/centos@2");
  ASSERT_TRUE(rev2.ok());

  v1::ComparePublicationRequest request;
  request.set_name(rev2->publication().name());
  v1::ComparePublicationResponse diff;
  EXPECT_EQ(marketplace_.ComparePublication(library_, request, &diff).code(),
            absl::StatusCode::kInvalidArgument);
  request.set_base_publication(rev1->publication().name());
  request.set_multi_cloud_image("accounts/b/multiCloudImages/x");
  EXPECT_EQ(marketplace_.ComparePublication(library_, request, &diff).code(),
            absl::StatusCode::kInvalidArgument);
  request.clear_multi_cloud_image();
  ASSERT_TRUE(marketplace_.ComparePublication(library_, request, &diff).ok());
  EXPECT_EQ(diff.base(), rev1->publication().name());
  EXPECT_EQ(diff.base_revision(), 1);
  ASSERT_THAT(diff.setting_changes(), SizeIs(1));
  EXPECT_EQ(diff.setting_changes(0).kind(), v1::CHANGED);
  EXPECT_THAT(diff.setting_changes(0).changed_fields(), ElementsAre("image"));
  // Another account's MCI is not a base the caller may read.
  request.clear_base_publication();
  request.set_multi_cloud_image("accounts/a/multiCloudImages/centos");
  EXPECT_EQ(marketplace_.ComparePublication(library_, request, &diff).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(MarketplaceTest, PagesThroughPublicationsWithOpaqueTokens) {
  for (int revision = 1; revision <= 5; ++revision) {
    Commit("a", "centos", revision, {Setting("aws-us-east-1", "rightimage-x64")});
    ASSERT_TRUE(Publish(absl::StrCat("accounts/a/multiCloudImages/centos@", revision)).ok());
  }
  v1::ListPublicationsRequest request;
  request.set_page_size(2);
  request.set_lineage("accounts/a/multiCloudImages/centos");
  std::vector<int64_t> revisions;
  for (int page = 0; page < 10; ++page) {
    v1::ListPublicationsResponse response;
    ASSERT_TRUE(marketplace_.ListPublications(library_, request, &response).ok());
    for (const auto& p : response.publications()) revisions.push_back(p.revision());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_THAT(revisions, ElementsAre(5, 4, 3, 2, 1));

  v1::ListPublicationsRequest bad;
  bad.set_page_token("not-a-token");
  v1::ListPublicationsResponse response;
  EXPECT_EQ(marketplace_.ListPublications(library_, bad, &response).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MarketplaceTest, OnlyThePublisherChangesSharing) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto published = Publish("accounts/a/multiCloudImages/centos@1");
  ASSERT_TRUE(published.ok());
  v1::UpdatePublicationSharingRequest request;
  request.set_name(published->publication().name());
  request.set_visibility(v1::SHARED);
  request.add_shared_with("accounts/b");
  v1::UpdatePublicationSharingResponse response;
  auto other_publisher = CallerOf("c", {auth::Role::kPublisher});
  EXPECT_EQ(marketplace_.UpdatePublicationSharing(other_publisher, request, &response).code(),
            absl::StatusCode::kPermissionDenied);
  request.set_etag("999");
  EXPECT_EQ(marketplace_.UpdatePublicationSharing(publisher_, request, &response).code(),
            absl::StatusCode::kAborted);
  request.set_etag(published->publication().etag());
  ASSERT_TRUE(marketplace_.UpdatePublicationSharing(publisher_, request, &response).ok());
  EXPECT_EQ(response.publication().visibility(), v1::SHARED);
  v1::GetPublicationRequest get;
  get.set_name(published->publication().name());
  v1::Publication read;
  EXPECT_EQ(marketplace_.GetPublication(other_publisher, get, &read).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(MarketplaceTest, CountsImportsAndTheClonesDescendingFromThem) {
  Commit("a", "centos", 1, {Setting("aws-us-east-1", "rightimage-x64")});
  auto published = Publish("accounts/a/multiCloudImages/centos@1");
  ASSERT_TRUE(published.ok());
  auto imported = Import(library_, published->publication().name());
  ASSERT_TRUE(imported.ok());
  LineageEvent clone{"accounts/b/multiCloudImages/clone",
                     "b",
                     "accounts/a/multiCloudImages/centos",
                     "CLONED",
                     imported->name() + "@1",
                     1,
                     false};
  LineageEvent grandchild{"accounts/b/multiCloudImages/clone2",
                          "b",
                          "accounts/a/multiCloudImages/centos",
                          "CLONED",
                          "accounts/b/multiCloudImages/clone",
                          1,
                          false};
  ASSERT_TRUE(repository_.ApplyLineageEvent(clone).ok());
  ASSERT_TRUE(repository_.ApplyLineageEvent(grandchild).ok());

  v1::GetPublicationUsageRequest request;
  request.set_name(published->publication().name());
  v1::PublicationUsage usage;
  ASSERT_TRUE(marketplace_.GetPublicationUsage(publisher_, request, &usage).ok());
  EXPECT_EQ(usage.importing_account_count(), 1);
  EXPECT_THAT(usage.importing_accounts(), ElementsAre("accounts/b"));
  EXPECT_EQ(usage.import_count(), 1);
  EXPECT_EQ(usage.clone_count(), 2);
  v1::PublicationUsage seen_by_importer;
  ASSERT_TRUE(marketplace_.GetPublicationUsage(library_, request, &seen_by_importer).ok());
  EXPECT_EQ(seen_by_importer.clone_count(), 2);
  EXPECT_THAT(seen_by_importer.importing_accounts(), IsEmpty())
      << "accounts are shown to the publisher only";
}

}  // namespace
}  // namespace mci::marketplace
