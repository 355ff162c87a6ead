#include "services/templates/names.h"

#include <gtest/gtest.h>

namespace mci::templates {
namespace {

TEST(TemplateNamesTest, ParsesTemplateHeadsAndRevisions) {
  auto head = ParseTemplateName("accounts/acme/serverTemplates/web", "name");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->account, "acme");
  EXPECT_EQ(head->template_id, "web");
  EXPECT_EQ(head->revision, 0);
  auto rev = ParseTemplateName("accounts/acme/serverTemplates/web@12", "name");
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(rev->revision, 12);
  EXPECT_EQ(rev->Full(), "accounts/acme/serverTemplates/web@12");
  EXPECT_EQ(rev->Head(), "accounts/acme/serverTemplates/web");
}

TEST(TemplateNamesTest, RejectsMalformedNamesWithTheFieldAndPattern) {
  for (const char* bad : {"", "web", "accounts/acme/serverTemplates", "accounts//serverTemplates/x",
                          "accounts/acme/multiCloudImages/x", "accounts/acme/serverTemplates/x@",
                          "accounts/acme/serverTemplates/x@0", "accounts/acme/serverTemplates/x@-1",
                          "accounts/acme/serverTemplates/x@1a", "accounts/a/serverTemplates/x/y"}) {
    auto parsed = ParseTemplateName(bad, "server_template");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("server_template"), absl::string_view::npos);
  }
}

TEST(TemplateNamesTest, ParsesMultiCloudImageNames) {
  auto m = ParseMultiCloudImageName("accounts/acme/multiCloudImages/base@3", "multi_cloud_image");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Head(), "accounts/acme/multiCloudImages/base");
  EXPECT_EQ(m->revision, 3);
  EXPECT_EQ(MultiCloudImageResourceName(m->Head(), 0), m->Head());
  EXPECT_EQ(MultiCloudImageResourceName(m->Head(), 3), m->Full());
  EXPECT_FALSE(ParseMultiCloudImageName("accounts/acme/serverTemplates/base", "m").ok());
}

TEST(TemplateNamesTest, TemplateIds) {
  EXPECT_TRUE(ValidateTemplateId("web-2").ok());
  EXPECT_FALSE(ValidateTemplateId("Web").ok());
  EXPECT_FALSE(ValidateTemplateId("2web").ok());
  EXPECT_FALSE(ValidateTemplateId(std::string(64, 'a')).ok());
  EXPECT_TRUE(ValidateTemplateId(GenerateTemplateId()).ok());
  EXPECT_NE(GenerateTemplateId(), GenerateTemplateId());
}

TEST(TemplateNamesTest, Etags) {
  EXPECT_EQ(*ParseEtag(""), 0);
  EXPECT_EQ(*ParseEtag(Etag(7)), 7);
  EXPECT_EQ(ParseEtag("7").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseEtag("v0").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TemplateNamesTest, PageTokensRoundTripAndRejectForgeries) {
  std::string token = EncodePageToken("xref", {5, 2, 0});
  auto key = DecodePageToken("xref", token, 3);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, (std::vector<int64_t>{5, 2, 0}));
  EXPECT_EQ(*DecodePageToken("xref", "", 3), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_FALSE(DecodePageToken("st", token, 1).ok());
  EXPECT_FALSE(DecodePageToken("xref", "not-base64!", 3).ok());
  EXPECT_FALSE(DecodePageToken("xref", EncodePageToken("xref", {1}), 3).ok());
}

TEST(TemplateNamesTest, PageSizes) {
  EXPECT_EQ(*PageSize(0), 50);
  EXPECT_EQ(*PageSize(7), 7);
  EXPECT_EQ(*PageSize(100000), 500);
  EXPECT_EQ(PageSize(-1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TemplateNamesTest, CloneNamesBumpTheVersion) {
  EXPECT_EQ(BumpVersion("Base v8"), "Base v9");
  EXPECT_EQ(BumpVersion("v1"), "v2");
  EXPECT_EQ(BumpVersion("Base"), "Base v2");
  EXPECT_EQ(BumpVersion("Base vX"), "Base vX v2");
}

}  // namespace
}  // namespace mci::templates
