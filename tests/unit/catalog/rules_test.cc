#include "services/catalog/rules.h"

#include <gtest/gtest.h>

#include <set>

#include "services/catalog/names.h"
#include "services/catalog/resolve_cache.h"

namespace mci::catalog {
namespace {

namespace pb = ::mci::catalog::v1;

TEST(CloneNameTest, BumpsTheVersion) {
  EXPECT_EQ(NextCloneDisplayName("MCI v8"), "MCI v9");
  EXPECT_EQ(NextCloneDisplayName("Base v99"), "Base v100");
  EXPECT_EQ(NextCloneDisplayName("Base"), "Base v2");
  EXPECT_EQ(NextCloneDisplayName("v3"), "v4");
  EXPECT_EQ(NextCloneDisplayName("Dev8"), "Dev8 v2");  // no " v" before the digits
  EXPECT_EQ(NextCloneDisplayName("Base v8 "), "Base v9");
  EXPECT_EQ(NextCloneDisplayName("Base V8"), "Base V9");
}

TEST(TagTest, AcceptsNamespacePredicateValue) {
  EXPECT_TRUE(ValidateTag("provides:rs_agent_type=right_link").ok());
  EXPECT_TRUE(ValidateTag("team:owner=web ops").ok());
  EXPECT_TRUE(ValidateTag("a:b=c=d").ok());
  for (const char* bad :
       {"", "x", "a:b", "a=b", ":b=c", "a:=c", "a:b=", "a b:c=d", "a:b= c", "a:b=c\n"}) {
    absl::Status s = ValidateTag(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateTag(std::string(300, 'a') + ":b=c").ok());
}

TEST(PageTokenTest, IsBoundToItsQuery) {
  std::string token = EncodePageToken("42", "q1");
  auto back = DecodePageToken(token, "q1");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "42");
  EXPECT_FALSE(DecodePageToken(token, "q2").ok());
  EXPECT_FALSE(DecodePageToken("!!!", "q1").ok());
  EXPECT_EQ(*DecodePageToken("", "q1"), "");
  EXPECT_EQ(*PageSize(0), 50);
  EXPECT_EQ(*PageSize(5000), 1000);
  EXPECT_FALSE(PageSize(-1).ok());
}

TEST(NamesTest, ParsesHeadAndRevisions) {
  auto head = ParseMciName("accounts/a1/multiCloudImages/base", true);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->revision, 0);
  EXPECT_EQ(head->Full(), "accounts/a1/multiCloudImages/base");
  auto rev = ParseMciName("accounts/a1/multiCloudImages/base@12", true);
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(rev->revision, 12);
  EXPECT_EQ(rev->Full(), "accounts/a1/multiCloudImages/base@12");
  EXPECT_EQ(rev->Head(), "accounts/a1/multiCloudImages/base");
  EXPECT_EQ(ParseMciName("accounts/a1/multiCloudImages/base@12", false).status().code(),
            absl::StatusCode::kFailedPrecondition);
  for (const char* bad :
       {"", "accounts/a1", "accounts/A/multiCloudImages/x", "accounts/a/multiCloudImages/1x",
        "accounts/a/multiCloudImages/x@", "accounts/a/multiCloudImages/x@0",
        "accounts/a/templates/x", "accounts/a/multiCloudImages/x/y"}) {
    EXPECT_EQ(ParseMciName(bad, true).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto setting = ParseSettingName("accounts/a/multiCloudImages/m@2/settings/aws-us-east-1");
  ASSERT_TRUE(setting.ok());
  EXPECT_EQ(setting->cloud_id, "aws-us-east-1");
  EXPECT_EQ(setting->mci.revision, 2);
  auto image = ParseCloudResourceName("clouds/aws-us-east-1/images/ami-1", "images", "image");
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->cloud_id, "aws-us-east-1");
  EXPECT_EQ(image->id, "ami-1");
  EXPECT_FALSE(ParseCloudResourceName("clouds/x/instanceTypes/y", "images", "image").ok());
}

SettingFacts Fact(const std::string& cloud, const std::string& os, pb::Architecture arch,
                  const std::string& agent, std::vector<pb::Architecture> type_arches,
                  bool usable = true) {
  SettingFacts f;
  f.cloud = cloud;
  f.image_found = true;
  f.image.set_name(cloud + "/images/i");
  f.image.set_os(os);
  f.image.set_architecture(arch);
  f.image.set_agent_version(agent);
  f.image.set_owner("accounts/other");
  f.image_usable = usable;
  f.instance_type_found = true;
  f.instance_type.set_name(cloud + "/instanceTypes/t");
  for (auto a : type_arches) f.instance_type.add_architectures(a);
  return f;
}

std::set<std::string> Codes(const std::vector<pb::Finding>& findings) {
  std::set<std::string> out;
  for (const auto& f : findings) out.insert(f.code());
  return out;
}

TEST(FindingsTest, CleanMciHasNone) {
  auto findings =
      ComputeFindings({kAgentTag},
                      {Fact("clouds/a", "CentOS", pb::X86_64, "5.6", {pb::X86_64}),
                       Fact("clouds/b", "CentOS", pb::X86_64, "5.6", {pb::I386, pb::X86_64})},
                      "me");
  EXPECT_TRUE(findings.empty());
}

TEST(FindingsTest, ReportsEachProblem) {
  EXPECT_EQ(Codes(ComputeFindings({}, {}, "me")),
            (std::set<std::string>{"MISSING_AGENT_TAG", "NO_CLOUDS"}));
  EXPECT_EQ(Codes(ComputeFindings({kAgentTag},
                                  {Fact("clouds/a", "CentOS", pb::I386, "5.6", {pb::I386}),
                                   Fact("clouds/b", "Ubuntu", pb::X86_64, "5.8", {pb::X86_64})},
                                  "me")),
            (std::set<std::string>{"MIXED_OS", "MIXED_ARCHITECTURE", "MIXED_AGENT_VERSION"}));
  auto bad = ComputeFindings(
      {kAgentTag}, {Fact("clouds/a", "CentOS", pb::X86_64, "5.6", {pb::I386}, false)}, "me");
  EXPECT_EQ(Codes(bad), (std::set<std::string>{"INSTANCE_TYPE_MISMATCH", "IMAGE_NOT_SHARED"}));
  for (const auto& f : bad) {
    EXPECT_EQ(f.severity(), pb::Finding::ERROR);
    EXPECT_EQ(f.cloud(), "clouds/a");
  }
}

TEST(ResolveCacheTest, InvalidationWinsOverARacingRead) {
  ResolveCache cache;
  uint64_t gen = 0;
  EXPECT_FALSE(cache.Get("a/m", 0, "c", &gen) != nullptr);
  ResolveCache::Answer answer;
  answer.response.set_image_provider_id("ami-1");
  cache.Invalidate("a/m");  // a write committed while the read was in flight
  cache.Put("a/m", 0, "c", gen, answer);
  uint64_t gen2 = 0;
  EXPECT_FALSE(cache.Get("a/m", 0, "c", &gen2) != nullptr);
  cache.Put("a/m", 0, "c", gen2, answer);
  auto hit = cache.Get("a/m", 0, "c", &gen2);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->response.image_provider_id(), "ami-1");
  cache.Invalidate("a/m");
  EXPECT_FALSE(cache.Get("a/m", 0, "c", &gen2) != nullptr);
}

TEST(ResolveCacheTest, HeadAnswersExpireRevisionsDoNot) {
  ResolveCache cache(absl::ZeroDuration());
  uint64_t gen = 0;
  cache.Get("a/m", 0, "c", &gen);
  cache.Put("a/m", 0, "c", gen, {});
  EXPECT_FALSE(cache.Get("a/m", 0, "c", &gen) != nullptr);
  cache.Get("a/m", 3, "c", &gen);
  cache.Put("a/m", 3, "c", gen, {});
  EXPECT_TRUE(cache.Get("a/m", 3, "c", &gen) != nullptr);
}

TEST(MciCacheTest, CachesHeadAndRevisionsUntilTheMciChanges) {
  MciCache cache;
  uint64_t gen = 0;
  EXPECT_EQ(cache.Get("a/m", 0, &gen), nullptr);
  pb::MultiCloudImage head;
  head.set_etag("\"7\"");
  cache.Put("a/m", 0, gen, head);
  cache.Get("a/m", 2, &gen);
  cache.Put("a/m", 2, gen, pb::MultiCloudImage());
  auto hit = cache.Get("a/m", 0, &gen);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->message.etag(), "\"7\"");
  // The same answer serialized, as a hit replies with it.
  pb::MultiCloudImage replied;
  ASSERT_TRUE(replied.ParseFromString(hit->wire));
  EXPECT_EQ(replied.etag(), "\"7\"");
  EXPECT_NE(cache.Get("a/m", 2, &gen), nullptr);
  EXPECT_EQ(cache.Get("a/other", 0, &gen), nullptr);
  cache.Invalidate("a/m");  // this replica's write, or another's event
  EXPECT_EQ(cache.Get("a/m", 0, &gen), nullptr);
  EXPECT_EQ(cache.Get("a/m", 2, &gen), nullptr);
}

TEST(MciCacheTest, HeadExpiresARacingReadIsNotCached) {
  MciCache expiring(absl::ZeroDuration());
  uint64_t gen = 0;
  expiring.Get("a/m", 0, &gen);
  expiring.Put("a/m", 0, gen, pb::MultiCloudImage());
  EXPECT_EQ(expiring.Get("a/m", 0, &gen), nullptr);

  MciCache cache;
  cache.Get("a/m", 0, &gen);
  cache.Invalidate("a/m");
  cache.Put("a/m", 0, gen, pb::MultiCloudImage());
  EXPECT_EQ(cache.Get("a/m", 0, &gen), nullptr);
}

}  // namespace
}  // namespace mci::catalog
