#include "services/marketplace/names.h"

#include <gtest/gtest.h>

namespace mci::marketplace {
namespace {

TEST(NamesTest, ParsesHeadAndRevisionNames) {
  auto head = ParseMultiCloudImageName("accounts/a/multiCloudImages/centos", "name");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->account, "a");
  EXPECT_EQ(head->id, "centos");
  EXPECT_EQ(head->revision, 0);
  auto rev = ParseMultiCloudImageName("accounts/a/multiCloudImages/centos@12", "name");
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(rev->revision, 12);
  EXPECT_EQ(rev->Head(), "accounts/a/multiCloudImages/centos");
  EXPECT_EQ(rev->Full(), "accounts/a/multiCloudImages/centos@12");
}

TEST(NamesTest, RejectsMalformedNamesSayingWhatToFix) {
  for (const char* bad :
       {"", "accounts/a", "accounts/a/templates/x", "accounts//multiCloudImages/x",
        "accounts/a/multiCloudImages/x@0", "accounts/a/multiCloudImages/x@two",
        "accounts/a/multiCloudImages/x/settings/c"}) {
    auto parsed = ParseMultiCloudImageName(bad, "multi_cloud_image");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("multi_cloud_image"), absl::string_view::npos);
  }
  EXPECT_FALSE(ParsePublicationName("publication/x", "name").ok());
  EXPECT_EQ(*ParsePublicationName("publications/pub-1", "name"), "pub-1");
  EXPECT_FALSE(ParseAccountName("b", "shared_with").ok());
  EXPECT_EQ(*ParseAccountName("accounts/b", "shared_with"), "b");
  EXPECT_TRUE(ValidatePublicationId("centos-54").ok());
  EXPECT_FALSE(ValidatePublicationId("Centos").ok());
  EXPECT_FALSE(ValidatePublicationId("9lives").ok());
}

TEST(NamesTest, PageTokensAreBoundToTheirFilters) {
  std::string token = EncodePageToken(42, "lineage\npublisher\n");
  EXPECT_EQ(*DecodePageToken(token, "lineage\npublisher\n"), 42);
  EXPECT_EQ(DecodePageToken(token, "other\n\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*DecodePageToken("", "x"), 0);
  EXPECT_FALSE(DecodePageToken("%%%", "").ok());
}

TEST(NamesTest, GeneratesValidPublicationIds) {
  std::string id = NewPublicationId();
  EXPECT_TRUE(ValidatePublicationId(id).ok()) << id;
  EXPECT_NE(id, NewPublicationId());
}

}  // namespace
}  // namespace mci::marketplace
