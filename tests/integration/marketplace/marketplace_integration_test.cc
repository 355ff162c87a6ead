// Publishing, sharing, importing, comparing and updating MultiCloud Images across accounts, with
// the real catalog and marketplace services.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"
#include "mci/marketplace/v1/marketplace.grpc.pb.h"
#include "tests/support/stack.h"

namespace mci {
namespace {

namespace cpb = catalog::v1;
namespace mpb = marketplace::v1;
using auth::Role;
using mci::testing::Context;
using mci::testing::Stack;
using mci::testing::Token;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

#define ASSERT_GRPC_OK(expr)                                                               \
  do {                                                                                     \
    grpc::Status _s = (expr);                                                              \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.error_code() << " " << _s.error_message(); \
  } while (0)

class MarketplaceIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { StartStack(/*templates=*/false); }
  static void StartStack(bool templates) {
    Stack::Options options;
    options.catalog = true;
    options.templates = templates;
    options.marketplace = true;
    stack_ = new Stack(options);
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }

  void SetUp() override {
    catalog_ = cpb::CatalogService::NewStub(stack_->Channel(stack_->catalog_address()));
    market_ = mpb::MarketplaceService::NewStub(stack_->Channel(stack_->marketplace_address()));
  }

  // Accounts of their own for every test, as the suite shares one stack.
  static std::string Account(const std::string& who) {
    static int counter = 0;
    return absl::StrCat(who, "-", ++counter);
  }

  // A public 64-bit machine image of `cloud` and an instance type that fits it.
  void PickImage(const std::string& cloud, std::string* image, std::string* instance_type,
                 const std::string& token) {
    cpb::ListImagesRequest images_request;
    images_request.set_parent(cloud);
    images_request.set_kind(cpb::MACHINE);
    images_request.set_page_size(500);
    cpb::ListImagesResponse images;
    ASSERT_GRPC_OK(catalog_->ListImages(Context(token).get(), images_request, &images));
    for (const auto& i : images.images()) {
      if (i.architecture() == cpb::X86_64 && i.visibility() == cpb::PUBLIC) {
        *image = i.name();
        break;
      }
    }
    ASSERT_FALSE(image->empty()) << "no public x86_64 machine image in " << cloud;
    FitInstanceType(cloud, instance_type, token);
  }

  void FitInstanceType(const std::string& cloud, std::string* instance_type,
                       const std::string& token) {
    cpb::ListInstanceTypesRequest request;
    request.set_parent(cloud);
    request.set_page_size(500);
    cpb::ListInstanceTypesResponse types;
    ASSERT_GRPC_OK(catalog_->ListInstanceTypes(Context(token).get(), request, &types));
    for (const auto& t : types.instance_types()) {
      if (std::count(t.architectures().begin(), t.architectures().end(), cpb::X86_64) > 0) {
        *instance_type = t.name();
        break;
      }
    }
    ASSERT_FALSE(instance_type->empty()) << "no x86_64 instance type in " << cloud;
  }

  std::string CreateMci(const std::string& token, const std::string& account,
                        const std::string& display_name) {
    cpb::CreateMultiCloudImageRequest request;
    request.set_parent("accounts/" + account);
    request.mutable_multi_cloud_image()->set_display_name(display_name);
    request.mutable_multi_cloud_image()->set_description("RightImage CentOS 5.4 x64");
    request.mutable_multi_cloud_image()->add_tags("provides:rs_agent_type=right_link");
    cpb::MultiCloudImage mci;
    grpc::Status s = catalog_->CreateMultiCloudImage(Context(token).get(), request, &mci);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return mci.name();
  }

  // Adds a setting for `cloud` and returns the image it uses.
  std::string AddSetting(const std::string& token, const std::string& mci, const std::string& cloud,
                         std::string image = "") {
    std::string instance_type;
    if (image.empty()) {
      PickImage(cloud, &image, &instance_type, token);
    } else {
      FitInstanceType(cloud, &instance_type, token);
    }
    cpb::CreateMultiCloudImageSettingRequest request;
    request.set_parent(mci);
    request.mutable_setting()->set_cloud(cloud);
    request.mutable_setting()->set_image(image);
    request.mutable_setting()->set_instance_type(instance_type);
    cpb::MultiCloudImageSetting setting;
    grpc::Status s =
        catalog_->CreateMultiCloudImageSetting(Context(token).get(), request, &setting);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return image;
  }

  int64_t Commit(const std::string& token, const std::string& mci) {
    cpb::CommitMultiCloudImageRequest request;
    request.set_name(mci);
    request.set_message("commit");
    cpb::MultiCloudImage committed;
    grpc::Status s = catalog_->CommitMultiCloudImage(Context(token).get(), request, &committed);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return committed.revision();
  }

  grpc::Status Publish(const std::string& token, const std::string& name,
                       mpb::PublishMultiCloudImageResponse* response,
                       mpb::Visibility visibility = mpb::PUBLIC,
                       std::vector<std::string> shared_with = {}, bool allow_head = false) {
    mpb::PublishMultiCloudImageRequest request;
    request.set_multi_cloud_image(name);
    request.set_visibility(visibility);
    request.set_allow_head(allow_head);
    for (auto& a : shared_with) request.add_shared_with(a);
    return market_->PublishMultiCloudImage(Context(token).get(), request, response);
  }

  grpc::Status Import(const std::string& token, const std::string& publication,
                      cpb::MultiCloudImage* imported) {
    mpb::ImportPublicationRequest request;
    request.set_name(publication);
    return market_->ImportPublication(Context(token).get(), request, imported);
  }

  static Stack* stack_;
  std::unique_ptr<cpb::CatalogService::Stub> catalog_;
  std::unique_ptr<mpb::MarketplaceService::Stub> market_;
};

Stack* MarketplaceIntegrationTest::stack_ = nullptr;

// The two seed procedures end to end: A publishes revision 1, B imports it, A commits and
// publishes revision 2 with another cloud, B sees the update, compares, updates and launches there.
TEST_F(MarketplaceIntegrationTest, PublishImportCompareAndUpdateAcrossAccounts) {
  const std::string a = Account("publisher"), b = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string tb = Token(b, {Role::kDesigner, Role::kLibrary});

  const std::string mci = CreateMci(ta, a, "CentOS 5.4 x64");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse rev1;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &rev1));
  EXPECT_EQ(rev1.publication().revision(), 1);
  EXPECT_EQ(rev1.publication().lineage(), mci);
  EXPECT_THAT(rev1.warnings(), IsEmpty());

  cpb::MultiCloudImage imported;
  ASSERT_GRPC_OK(Import(tb, rev1.publication().name(), &imported));
  EXPECT_THAT(imported.name(), HasSubstr("accounts/" + b + "/multiCloudImages/"));
  EXPECT_EQ(imported.origin().kind(), cpb::Origin::IMPORTED);
  EXPECT_EQ(imported.origin().source(), rev1.publication().name());
  EXPECT_EQ(imported.origin().lineage(), mci);
  EXPECT_EQ(imported.latest_revision(), 1);
  cpb::MultiCloudImage again;
  ASSERT_GRPC_OK(Import(tb, rev1.publication().name(), &again));
  EXPECT_EQ(again.name(), imported.name()) << "importing twice returns the first import";

  const std::string west_image = AddSetting(ta, mci, "clouds/aws-us-west-1");
  ASSERT_EQ(Commit(ta, mci), 2);
  mpb::PublishMultiCloudImageResponse rev2;
  ASSERT_GRPC_OK(Publish(ta, mci + "@2", &rev2, mpb::SHARED, {"accounts/" + b}));

  mpb::ListAvailableUpdatesRequest updates_request;
  updates_request.set_multi_cloud_image(imported.name());
  mpb::ListAvailableUpdatesResponse updates;
  ASSERT_GRPC_OK(market_->ListAvailableUpdates(Context(tb).get(), updates_request, &updates));
  EXPECT_EQ(updates.current_revision(), 1);
  ASSERT_THAT(updates.publications(), SizeIs(1));
  EXPECT_EQ(updates.publications(0).name(), rev2.publication().name());

  mpb::ComparePublicationRequest compare_request;
  compare_request.set_name(rev2.publication().name());
  compare_request.set_multi_cloud_image(imported.name());
  mpb::ComparePublicationResponse diff;
  ASSERT_GRPC_OK(market_->ComparePublication(Context(tb).get(), compare_request, &diff));
  ASSERT_THAT(diff.setting_changes(), SizeIs(1));
  EXPECT_EQ(diff.setting_changes(0).cloud(), "clouds/aws-us-west-1");
  EXPECT_EQ(diff.setting_changes(0).kind(), mpb::ADDED);
  EXPECT_EQ(diff.base_revision(), 1);
  EXPECT_EQ(diff.target_revision(), 2);

  mpb::UpdateImportedMultiCloudImageRequest update;
  update.set_multi_cloud_image(imported.name());
  cpb::MultiCloudImage updated;
  ASSERT_GRPC_OK(market_->UpdateImportedMultiCloudImage(Context(tb).get(), update, &updated));
  EXPECT_EQ(updated.name(), imported.name());
  EXPECT_EQ(updated.latest_revision(), 2);

  cpb::ResolveImageRequest resolve;
  resolve.set_name(imported.name());
  resolve.set_cloud("clouds/aws-us-west-1");
  cpb::ResolveImageResponse resolved;
  ASSERT_GRPC_OK(catalog_->ResolveImage(Context(tb).get(), resolve, &resolved));
  EXPECT_EQ(resolved.setting().image(), west_image);
  resolve.set_name(imported.name() + "@2");
  ASSERT_GRPC_OK(catalog_->ResolveImage(Context(tb).get(), resolve, &resolved));
  EXPECT_EQ(resolved.setting().image(), west_image);

  // Up to date now; a retry of the update is harmless.
  mpb::ListAvailableUpdatesResponse after;
  ASSERT_GRPC_OK(market_->ListAvailableUpdates(Context(tb).get(), updates_request, &after));
  EXPECT_EQ(after.current_revision(), 2);
  EXPECT_THAT(after.publications(), IsEmpty());
  update.set_publication(rev2.publication().name());
  ASSERT_GRPC_OK(market_->UpdateImportedMultiCloudImage(Context(tb).get(), update, &updated));
}

TEST_F(MarketplaceIntegrationTest, RefusesWithTheCodesThatSayWhy) {
  const std::string a = Account("publisher"), b = Account("library"), c = Account("stranger");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string tb = Token(b, {Role::kDesigner, Role::kLibrary, Role::kPublisher});
  const std::string tc = Token(c, {Role::kDesigner, Role::kLibrary});
  const std::string mci = CreateMci(ta, a, "CentOS");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse response;

  grpc::Status no_role = Publish(Token(a, {Role::kDesigner}), mci + "@1", &response);
  EXPECT_EQ(no_role.error_code(), grpc::StatusCode::PERMISSION_DENIED) << no_role.error_message();

  grpc::Status head = Publish(ta, mci, &response);
  EXPECT_EQ(head.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(head.error_message(), HasSubstr("allow_head"));

  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &response, mpb::SHARED, {"accounts/" + b}));
  const std::string shared = response.publication().name();
  mpb::PublishMultiCloudImageResponse twice;
  EXPECT_EQ(Publish(ta, mci + "@1", &twice).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  mpb::GetPublicationRequest get;
  get.set_name(shared);
  mpb::Publication publication;
  EXPECT_EQ(market_->GetPublication(Context(tc).get(), get, &publication).error_code(),
            grpc::StatusCode::NOT_FOUND);
  cpb::MultiCloudImage imported;
  EXPECT_EQ(Import(tc, shared, &imported).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Import(Token(b, {Role::kDesigner}), shared, &imported).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  ASSERT_GRPC_OK(Import(tb, shared, &imported));
  mpb::PublishMultiCloudImageResponse republish;
  grpc::Status imported_refused = Publish(tb, imported.name() + "@1", &republish);
  EXPECT_EQ(imported_refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << imported_refused.error_message();

  mpb::ListPublicationsRequest list;
  mpb::ListPublicationsResponse listed;
  ASSERT_GRPC_OK(market_->ListPublications(Context(tc).get(), list, &listed));
  for (const auto& p : listed.publications()) EXPECT_NE(p.name(), shared);

  grpc::ClientContext anonymous;
  EXPECT_EQ(market_->GetPublication(&anonymous, get, &publication).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(MarketplaceIntegrationTest, WarnsAboutAPrivateImageNotSharedWithTheTargetAccounts) {
  const std::string a = Account("publisher"), b = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher, Role::kActor});
  cpb::RegisterImageRequest register_request;
  register_request.set_parent("clouds/openstack-private");
  register_request.set_image_id("golden-" + a);
  auto* image = register_request.mutable_image();
  image->set_kind(cpb::MACHINE);
  image->set_provider_id("ami-0badc0de");
  image->set_display_name("Golden CentOS");
  image->set_os("CentOS 5.4");
  image->set_architecture(cpb::X86_64);
  image->set_agent_version("5.6");
  cpb::Image registered;
  ASSERT_GRPC_OK(catalog_->RegisterImage(Context(ta).get(), register_request, &registered));

  const std::string mci = CreateMci(ta, a, "Golden");
  AddSetting(ta, mci, "clouds/openstack-private", registered.name());
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &published, mpb::SHARED, {"accounts/" + b}));
  ASSERT_THAT(published.warnings(), SizeIs(1));
  EXPECT_EQ(published.warnings(0).code(), "PRIVATE_IMAGE_NOT_SHARED");
  EXPECT_THAT(published.warnings(0).message(), HasSubstr("accounts/" + b));
  EXPECT_THAT(published.warnings(0).message(), HasSubstr("ami-0badc0de"));

  cpb::ShareImageRequest share;
  share.set_name(registered.name());
  share.add_accounts("accounts/" + b);
  cpb::Image shared_image;
  ASSERT_GRPC_OK(catalog_->ShareImage(Context(ta).get(), share, &shared_image));
  mpb::UpdatePublicationSharingRequest sharing;
  sharing.set_name(published.publication().name());
  sharing.set_visibility(mpb::SHARED);
  sharing.add_shared_with("accounts/" + b);
  sharing.set_etag(published.publication().etag());
  mpb::UpdatePublicationSharingResponse resharing;
  ASSERT_GRPC_OK(market_->UpdatePublicationSharing(Context(ta).get(), sharing, &resharing));
  EXPECT_THAT(resharing.warnings(), IsEmpty());
  sharing.set_visibility(mpb::PUBLIC);
  sharing.clear_shared_with();
  EXPECT_EQ(market_->UpdatePublicationSharing(Context(ta).get(), sharing, &resharing).error_code(),
            grpc::StatusCode::ABORTED)
      << "the etag of the first read is stale now";
  sharing.set_etag(resharing.publication().etag());
  ASSERT_GRPC_OK(market_->UpdatePublicationSharing(Context(ta).get(), sharing, &resharing));
  EXPECT_THAT(resharing.warnings(), SizeIs(1)) << "public, but the image is private";
}

TEST_F(MarketplaceIntegrationTest, AHeadPublicationIsAFrozenSnapshot) {
  const std::string a = Account("publisher"), b = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string mci = CreateMci(ta, a, "Work in progress");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci, &published, mpb::PUBLIC, {}, /*allow_head=*/true));
  EXPECT_EQ(published.publication().revision(), 0);
  EXPECT_THAT(published.warnings(),
              Contains(::testing::Property(&cpb::Finding::code, "HEAD_PUBLISHED")));

  cpb::UpdateMultiCloudImageRequest edit;
  edit.mutable_multi_cloud_image()->set_name(mci);
  edit.mutable_multi_cloud_image()->set_description("edited after publishing");
  edit.mutable_update_mask()->add_paths("description");
  cpb::MultiCloudImage edited;
  ASSERT_GRPC_OK(catalog_->UpdateMultiCloudImage(Context(ta).get(), edit, &edited));
  AddSetting(ta, mci, "clouds/aws-eu-west-1");

  mpb::GetPublicationRequest get;
  get.set_name(published.publication().name());
  mpb::Publication read;
  ASSERT_GRPC_OK(market_->GetPublication(Context(Token(b, {})).get(), get, &read));
  EXPECT_EQ(read.description(), "RightImage CentOS 5.4 x64");
  EXPECT_EQ(read.snapshot().settings_size(), 1);

  cpb::MultiCloudImage imported;
  ASSERT_GRPC_OK(Import(Token(b, {Role::kLibrary}), read.name(), &imported));
  EXPECT_EQ(imported.latest_revision(), 1) << "HEAD imports as the revision after the latest";
}

TEST_F(MarketplaceIntegrationTest, ListsOnlyWhatTheCallerMaySeePageByPage) {
  const std::string a = Account("publisher"), b = Account("library"), c = Account("stranger");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string mci = CreateMci(ta, a, "Paged");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  for (int revision = 1; revision <= 3; ++revision) {
    ASSERT_EQ(Commit(ta, mci), revision);
    mpb::PublishMultiCloudImageResponse published;
    ASSERT_GRPC_OK(
        Publish(ta, absl::StrCat(mci, "@", revision), &published, mpb::SHARED, {"accounts/" + b}));
  }
  mpb::ListPublicationsRequest request;
  request.set_publisher("accounts/" + a);
  request.set_lineage(mci);
  request.set_page_size(2);
  std::vector<int64_t> revisions;
  for (int page = 0; page < 5; ++page) {
    mpb::ListPublicationsResponse response;
    ASSERT_GRPC_OK(market_->ListPublications(Context(Token(b, {})).get(), request, &response));
    for (const auto& p : response.publications()) revisions.push_back(p.revision());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_THAT(revisions, ElementsAre(3, 2, 1));

  request.clear_page_token();
  mpb::ListPublicationsResponse stranger;
  ASSERT_GRPC_OK(market_->ListPublications(Context(Token(c, {})).get(), request, &stranger));
  EXPECT_THAT(stranger.publications(), IsEmpty());

  request.set_page_token("garbage");
  EXPECT_EQ(market_->ListPublications(Context(Token(b, {})).get(), request, &stranger).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// Lineage survives cloning: clones of imports count as usage, and a clone of an import sees its
// updates.
TEST_F(MarketplaceIntegrationTest, ReportsImportsAndClonesDescendingFromThem) {
  const std::string a = Account("publisher"), b = Account("library"), c = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string tb = Token(b, {Role::kDesigner, Role::kLibrary});
  const std::string tc = Token(c, {Role::kDesigner, Role::kLibrary});
  const std::string mci = CreateMci(ta, a, "Popular");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &published));
  const std::string publication = published.publication().name();

  cpb::MultiCloudImage imported_b, imported_c;
  ASSERT_GRPC_OK(Import(tb, publication, &imported_b));
  ASSERT_GRPC_OK(Import(tc, publication, &imported_c));
  cpb::CloneMultiCloudImageRequest clone_request;
  clone_request.set_name(imported_b.name() + "@1");
  cpb::MultiCloudImage clone;
  ASSERT_GRPC_OK(catalog_->CloneMultiCloudImage(Context(tb).get(), clone_request, &clone));
  EXPECT_EQ(clone.origin().lineage(), mci);
  clone_request.set_name(clone.name());
  cpb::MultiCloudImage grandchild;
  ASSERT_GRPC_OK(catalog_->CloneMultiCloudImage(Context(tb).get(), clone_request, &grandchild));

  // The clones reach the marketplace through the catalog's events: wait for them to arrive.
  mpb::GetPublicationUsageRequest usage_request;
  usage_request.set_name(publication);
  mpb::PublicationUsage usage;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (true) {
    usage.Clear();
    ASSERT_GRPC_OK(market_->GetPublicationUsage(Context(ta).get(), usage_request, &usage));
    if (usage.clone_count() >= 2 || absl::Now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(usage.importing_account_count(), 2);
  EXPECT_THAT(usage.importing_accounts(), ElementsAre("accounts/" + b, "accounts/" + c));
  EXPECT_EQ(usage.import_count(), 2);
  EXPECT_EQ(usage.clone_count(), 2);
  EXPECT_THAT(usage.clones(), Contains(clone.name()));
  EXPECT_THAT(usage.clones(), Contains(grandchild.name()));

  // The importer sees the counts, not who the other importers are.
  mpb::PublicationUsage seen_by_b;
  ASSERT_GRPC_OK(market_->GetPublicationUsage(Context(tb).get(), usage_request, &seen_by_b));
  EXPECT_EQ(seen_by_b.clone_count(), 2);
  EXPECT_THAT(seen_by_b.importing_accounts(), IsEmpty());

  // A newer revision shows up as an update of the clone, too.
  AddSetting(ta, mci, "clouds/aws-eu-west-1");
  ASSERT_EQ(Commit(ta, mci), 2);
  mpb::PublishMultiCloudImageResponse rev2;
  ASSERT_GRPC_OK(Publish(ta, mci + "@2", &rev2));
  mpb::ListAvailableUpdatesRequest updates_request;
  updates_request.set_multi_cloud_image(grandchild.name());
  mpb::ListAvailableUpdatesResponse updates;
  ASSERT_GRPC_OK(market_->ListAvailableUpdates(Context(tb).get(), updates_request, &updates));
  ASSERT_THAT(updates.publications(), SizeIs(1));
  EXPECT_EQ(updates.publications(0).name(), rev2.publication().name());
  // Clones keep their own edits: only the import itself is updated in place.
  mpb::UpdateImportedMultiCloudImageRequest update;
  update.set_multi_cloud_image(grandchild.name());
  cpb::MultiCloudImage updated;
  EXPECT_EQ(
      market_->UpdateImportedMultiCloudImage(Context(tb).get(), update, &updated).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
}

// Deleting MCIs needs the template-reference service (the deletion saga asks it first).
class MarketplaceDeletionTest : public MarketplaceIntegrationTest {
 protected:
  static void SetUpTestSuite() { StartStack(/*templates=*/true); }

  void Delete(const std::string& token, const std::string& name) {
    cpb::DeleteMultiCloudImageRequest request;
    request.set_name(name);
    google::protobuf::Empty empty;
    ASSERT_GRPC_OK(catalog_->DeleteMultiCloudImage(Context(token).get(), request, &empty));
  }

  // Polls the usage until `done` holds or a minute passes (events arrive asynchronously).
  mpb::PublicationUsage UsageWhen(const std::string& token, const std::string& publication,
                                  const std::function<bool(const mpb::PublicationUsage&)>& done) {
    mpb::GetPublicationUsageRequest request;
    request.set_name(publication);
    mpb::PublicationUsage usage;
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (true) {
      usage.Clear();
      grpc::Status s = market_->GetPublicationUsage(Context(token).get(), request, &usage);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok() || done(usage) || absl::Now() > deadline) return usage;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
};

TEST_F(MarketplaceDeletionTest, DeletingTheSourceLeavesThePublicationIntact) {
  const std::string a = Account("publisher"), b = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string mci = CreateMci(ta, a, "Short-lived");
  const std::string image = AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &published));
  Delete(ta, mci);

  mpb::GetPublicationRequest get;
  get.set_name(published.publication().name());
  mpb::Publication read;
  ASSERT_GRPC_OK(market_->GetPublication(Context(Token(b, {})).get(), get, &read));
  ASSERT_EQ(read.snapshot().settings_size(), 1);
  EXPECT_EQ(read.snapshot().settings(0).image(), image);
  cpb::MultiCloudImage imported;
  ASSERT_GRPC_OK(Import(Token(b, {Role::kLibrary}), read.name(), &imported));
  cpb::ResolveImageRequest resolve;
  resolve.set_name(imported.name());
  resolve.set_cloud("clouds/aws-us-east-1");
  cpb::ResolveImageResponse resolved;
  ASSERT_GRPC_OK(catalog_->ResolveImage(Context(Token(b, {})).get(), resolve, &resolved));
  EXPECT_EQ(resolved.setting().image(), image);
}

TEST_F(MarketplaceDeletionTest, ADeletedCloneOrImportNoLongerCounts) {
  const std::string a = Account("publisher"), b = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string tb = Token(b, {Role::kDesigner, Role::kLibrary});
  const std::string mci = CreateMci(ta, a, "Counted");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &published));
  const std::string publication = published.publication().name();
  cpb::MultiCloudImage imported;
  ASSERT_GRPC_OK(Import(tb, publication, &imported));
  cpb::CloneMultiCloudImageRequest clone_request;
  clone_request.set_name(imported.name());
  cpb::MultiCloudImage clone;
  ASSERT_GRPC_OK(catalog_->CloneMultiCloudImage(Context(tb).get(), clone_request, &clone));

  auto usage = UsageWhen(ta, publication, [](const auto& u) { return u.clone_count() == 1; });
  ASSERT_EQ(usage.clone_count(), 1);
  Delete(tb, clone.name());
  usage = UsageWhen(ta, publication, [](const auto& u) { return u.clone_count() == 0; });
  EXPECT_EQ(usage.clone_count(), 0);
  Delete(tb, imported.name());
  usage = UsageWhen(ta, publication, [](const auto& u) { return u.import_count() == 0; });
  EXPECT_EQ(usage.import_count(), 0);
  EXPECT_EQ(usage.importing_account_count(), 1) << "the account did import it once";

  // Imported again after the deletion: a fresh MCI, not the deleted one.
  cpb::MultiCloudImage reimported;
  ASSERT_GRPC_OK(Import(tb, publication, &reimported));
  EXPECT_NE(reimported.name(), imported.name());
}

// Outages get a stack of their own.
class MarketplaceOutageTest : public MarketplaceIntegrationTest {
 protected:
  // Polls the marketplace's health until it reports `serving` (1 SERVING, 2 NOT_SERVING) or a
  // minute passes; returns the last answer.
  int HealthWhen(int serving) {
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    int last = 0;
    while (absl::Now() < deadline) {
      auto health = mci::testing::HealthCheck(stack_->marketplace_address(),
                                              "mci.marketplace.v1.MarketplaceService");
      last = health.ok() ? *health : 0;
      if (last == serving) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return last;
  }
};

TEST_F(MarketplaceOutageTest, ANatsOutageMakesItUnreadyAndOnlyDelaysLineage) {
  const std::string a = Account("publisher"), b = Account("library");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string tb = Token(b, {Role::kDesigner, Role::kLibrary});
  const std::string mci = CreateMci(ta, a, "Resilient");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &published));
  cpb::MultiCloudImage imported;
  ASSERT_GRPC_OK(Import(tb, published.publication().name(), &imported));
  ASSERT_EQ(HealthWhen(1), 1);

  stack_->nats().Stop();
  EXPECT_EQ(HealthWhen(2), 2) << "NOT_SERVING while NATS is down";
  // Publications are still served from the database, and the catalog still takes clones.
  mpb::GetPublicationRequest get;
  get.set_name(published.publication().name());
  mpb::Publication read;
  ASSERT_GRPC_OK(market_->GetPublication(Context(tb).get(), get, &read));
  cpb::CloneMultiCloudImageRequest clone_request;
  clone_request.set_name(imported.name());
  cpb::MultiCloudImage clone;
  ASSERT_GRPC_OK(catalog_->CloneMultiCloudImage(Context(tb).get(), clone_request, &clone));

  stack_->nats().Start();
  EXPECT_EQ(HealthWhen(1), 1) << "SERVING again once NATS is back";
  mpb::GetPublicationUsageRequest usage_request;
  usage_request.set_name(published.publication().name());
  mpb::PublicationUsage usage;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (true) {
    usage.Clear();
    ASSERT_GRPC_OK(market_->GetPublicationUsage(Context(ta).get(), usage_request, &usage));
    if (usage.clone_count() >= 1 || absl::Now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_THAT(usage.clones(), ElementsAre(clone.name()))
      << "the clone made during the outage arrives after it";
}

TEST_F(MarketplaceOutageTest, ADatabaseOutageMakesItUnreadyAndUnavailableUntilBack) {
  const std::string a = Account("publisher");
  const std::string ta = Token(a, {Role::kDesigner, Role::kPublisher});
  const std::string mci = CreateMci(ta, a, "Durable");
  AddSetting(ta, mci, "clouds/aws-us-east-1");
  ASSERT_EQ(Commit(ta, mci), 1);
  mpb::PublishMultiCloudImageResponse published;
  ASSERT_GRPC_OK(Publish(ta, mci + "@1", &published));
  mpb::GetPublicationRequest get;
  get.set_name(published.publication().name());
  mpb::Publication read;

  stack_->postgres().Stop();
  EXPECT_EQ(HealthWhen(2), 2) << "NOT_SERVING while the database is down";
  grpc::Status down = market_->GetPublication(Context(ta).get(), get, &read);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();

  stack_->postgres().Start();
  EXPECT_EQ(HealthWhen(1), 1) << "SERVING again once the database is back";
  ASSERT_GRPC_OK(market_->GetPublication(Context(ta).get(), get, &read));
  EXPECT_EQ(read.name(), published.publication().name());
}

}  // namespace
}  // namespace mci
