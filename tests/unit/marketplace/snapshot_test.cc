#include "services/marketplace/snapshot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mci::marketplace {
namespace {

using catalog::v1::MultiCloudImage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

catalog::v1::MultiCloudImageSetting* AddSetting(MultiCloudImage* mci, const std::string& cloud,
                                                const std::string& image) {
  auto* s = mci->add_settings();
  s->set_name(mci->name() + "/settings/" + cloud);
  s->set_cloud("clouds/" + cloud);
  s->set_image("clouds/" + cloud + "/images/" + image);
  s->set_instance_type("clouds/" + cloud + "/instanceTypes/m1.large");
  return s;
}

TEST(CompareSnapshotsTest, NamesSettingsAddedRemovedAndChangedPerCloud) {
  MultiCloudImage base, target;
  base.set_name("accounts/b/multiCloudImages/imported");
  target.set_name("accounts/a/multiCloudImages/centos@2");
  AddSetting(&base, "aws-us-east-1", "v1");
  AddSetting(&base, "aws-eu-west-1", "v1");
  AddSetting(&base, "google-us-central1", "g1");
  AddSetting(&target, "aws-us-east-1", "v2")->set_user_data("hello");
  AddSetting(&target, "aws-us-west-1", "v1");
  AddSetting(&target, "google-us-central1", "g1");
  base.set_description("old");
  target.set_description("new");
  base.add_tags("provides:rs_agent_type=right_link");
  base.add_tags("os:name=centos");
  target.add_tags("provides:rs_agent_type=right_link");
  target.add_tags("os:version=5.4");

  auto diff = CompareSnapshots(base, target);
  ASSERT_THAT(diff.setting_changes(), SizeIs(3));
  EXPECT_EQ(diff.setting_changes(0).cloud(), "clouds/aws-eu-west-1");
  EXPECT_EQ(diff.setting_changes(0).kind(), v1::REMOVED);
  EXPECT_FALSE(diff.setting_changes(0).has_target());
  EXPECT_EQ(diff.setting_changes(1).cloud(), "clouds/aws-us-east-1");
  EXPECT_EQ(diff.setting_changes(1).kind(), v1::CHANGED);
  EXPECT_THAT(diff.setting_changes(1).changed_fields(), ElementsAre("image", "user_data"));
  EXPECT_EQ(diff.setting_changes(2).cloud(), "clouds/aws-us-west-1");
  EXPECT_EQ(diff.setting_changes(2).kind(), v1::ADDED);
  EXPECT_EQ(diff.setting_changes(2).target().image(), "clouds/aws-us-west-1/images/v1");
  EXPECT_EQ(diff.description().base(), "old");
  EXPECT_EQ(diff.description().target(), "new");
  EXPECT_FALSE(diff.has_display_name());
  EXPECT_THAT(diff.tags_added(), ElementsAre("os:version=5.4"));
  EXPECT_THAT(diff.tags_removed(), ElementsAre("os:name=centos"));
  EXPECT_FALSE(diff.identical());
}

TEST(CompareSnapshotsTest, SettingNamesOfDifferentMcisAreNotChanges) {
  MultiCloudImage base, target;
  base.set_name("accounts/b/multiCloudImages/imported");
  target.set_name("accounts/a/multiCloudImages/centos@1");
  AddSetting(&base, "aws-us-east-1", "v1");
  AddSetting(&target, "aws-us-east-1", "v1");
  auto diff = CompareSnapshots(base, target);
  EXPECT_THAT(diff.setting_changes(), IsEmpty());
  EXPECT_TRUE(diff.identical());
}

class PrivateImageWarningsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AddSetting(&snapshot_, "openstack-private", "golden");
    AddSetting(&snapshot_, "aws-us-east-1", "public-base");
    catalog::v1::Image golden;
    golden.set_name("clouds/openstack-private/images/golden");
    golden.set_provider_id("ami-0a1b2c3d");
    golden.set_visibility(catalog::v1::PRIVATE);
    golden.set_owner("accounts/a");
    golden.add_shared_with("accounts/b");
    images_[golden.name()] = golden;
    catalog::v1::Image base;
    base.set_name("clouds/aws-us-east-1/images/public-base");
    base.set_visibility(catalog::v1::PUBLIC);
    images_[base.name()] = base;
  }
  MultiCloudImage snapshot_;
  std::map<std::string, catalog::v1::Image> images_;
};

TEST_F(PrivateImageWarningsTest, WarnsForAccountsThatCannotUseTheImage) {
  auto findings = PrivateImageWarnings(snapshot_, "accounts/a", v1::SHARED,
                                       {"accounts/b", "accounts/c"}, images_);
  ASSERT_THAT(findings, SizeIs(1));
  EXPECT_EQ(findings[0].cloud(), "clouds/openstack-private");
  EXPECT_EQ(findings[0].severity(), catalog::v1::Finding::WARNING);
  EXPECT_THAT(findings[0].message(), HasSubstr("ami-0a1b2c3d"));
  EXPECT_THAT(findings[0].message(), HasSubstr("not shared with accounts/c:"));
}

TEST_F(PrivateImageWarningsTest, NoWarningWhenEveryTargetHasTheImage) {
  EXPECT_THAT(PrivateImageWarnings(snapshot_, "accounts/a", v1::SHARED, {"accounts/b"}, images_),
              IsEmpty());
}

TEST_F(PrivateImageWarningsTest, APublicPublicationOfAPrivateImageWarns) {
  EXPECT_THAT(PrivateImageWarnings(snapshot_, "accounts/a", v1::PUBLIC, {}, images_), SizeIs(1));
}

TEST_F(PrivateImageWarningsTest, KernelAndRamdiskImagesCountToo) {
  snapshot_.mutable_settings(1)->set_kernel_image("clouds/openstack-private/images/golden");
  EXPECT_THAT(PrivateImageWarnings(snapshot_, "accounts/a", v1::PUBLIC, {}, images_), SizeIs(2));
}

TEST(ImportSnapshotTest, CarriesTheContentAndTheImportedOrigin) {
  v1::Publication publication;
  publication.set_name("publications/pub-1");
  publication.set_revision(4);
  publication.set_lineage("accounts/a/multiCloudImages/centos");
  auto* snapshot = publication.mutable_snapshot();
  snapshot->set_name("accounts/a/multiCloudImages/centos@4");
  snapshot->set_display_name("CentOS");
  snapshot->set_description("base image");
  snapshot->add_tags("provides:rs_agent_type=right_link");
  snapshot->set_etag("e1");
  AddSetting(snapshot, "aws-us-east-1", "v1");

  auto out = ImportSnapshot(publication);
  EXPECT_TRUE(out.name().empty());
  EXPECT_TRUE(out.etag().empty());
  EXPECT_EQ(out.display_name(), "CentOS");
  EXPECT_EQ(out.description(), "base image");
  EXPECT_THAT(out.tags(), ElementsAre("provides:rs_agent_type=right_link"));
  ASSERT_THAT(out.settings(), SizeIs(1));
  EXPECT_TRUE(out.settings(0).name().empty());
  EXPECT_EQ(out.settings(0).image(), "clouds/aws-us-east-1/images/v1");
  EXPECT_EQ(out.origin().kind(), catalog::v1::Origin::IMPORTED);
  EXPECT_EQ(out.origin().source(), "publications/pub-1");
  EXPECT_EQ(out.origin().publication(), "publications/pub-1");
  EXPECT_EQ(out.origin().lineage(), "accounts/a/multiCloudImages/centos");
  EXPECT_EQ(out.origin().source_revision(), 4);
}

}  // namespace
}  // namespace mci::marketplace
