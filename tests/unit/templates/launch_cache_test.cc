// LaunchCache on its own: what it keeps, for how long, and what drops it.

#include "services/templates/launch_cache.h"

#include <gtest/gtest.h>

namespace mci::templates {
namespace {

constexpr char kMci[] = "accounts/acme/multiCloudImages/base";
constexpr char kEast[] = "clouds/aws-us-east-1";

TemplateRecord Template(int64_t revision) {
  TemplateRecord t;
  t.account = "acme";
  t.template_id = "web";
  t.revision = revision;
  return t;
}

LaunchCache::Resolved Answer(int64_t sequence, absl::Status status = absl::OkStatus()) {
  LaunchCache::Resolved r;
  r.status = std::move(status);
  r.response.set_sequence(sequence);
  return r;
}

TEST(LaunchCacheTest, TemplatesAreDroppedByAChangeOfTheirTemplateOnly) {
  LaunchCache cache;
  uint64_t gen = 0;
  for (int64_t revision : {0, 1}) {
    EXPECT_EQ(cache.GetTemplate("acme", "web", revision, &gen), nullptr);
    cache.PutTemplate(Template(revision), gen);
  }
  cache.GetTemplate("acme", "other", 0, &gen);
  TemplateRecord other = Template(0);
  other.template_id = "other";
  cache.PutTemplate(other, gen);
  EXPECT_NE(cache.GetTemplate("acme", "web", 1, &gen), nullptr);
  cache.TemplateChanged("acme", "web");
  EXPECT_EQ(cache.GetTemplate("acme", "web", 0, &gen), nullptr);
  EXPECT_EQ(cache.GetTemplate("acme", "web", 1, &gen), nullptr);  // a delete drops revisions too
  EXPECT_NE(cache.GetTemplate("acme", "other", 0, &gen), nullptr);
}

TEST(LaunchCacheTest, EveryTemplateEntryExpiresEvenCommittedOnes) {
  LaunchCache cache(absl::ZeroDuration());
  uint64_t gen = 0;
  cache.GetTemplate("acme", "web", 3, &gen);
  cache.PutTemplate(Template(3), gen);
  EXPECT_EQ(cache.GetTemplate("acme", "web", 3, &gen), nullptr);
}

TEST(LaunchCacheTest, ATemplateReadThatRacedWithAChangeIsNotCached) {
  LaunchCache cache;
  uint64_t gen = 0;
  cache.GetTemplate("acme", "web", 0, &gen);
  cache.TemplateChanged("acme", "web");  // another replica's announcement, mid-read
  cache.PutTemplate(Template(0), gen);
  EXPECT_EQ(cache.GetTemplate("acme", "web", 0, &gen), nullptr);
}

TEST(LaunchCacheTest, HeadAnswersOlderThanTheLatestEventAreNotCached) {
  LaunchCache cache;
  uint64_t gen = 0;
  cache.MciChanged(kMci, 7);
  cache.GetResolved(kMci, 0, kEast, &gen);
  cache.PutResolved(kMci, 0, kEast, gen, Answer(6));  // a catalog replica still at 6
  EXPECT_EQ(cache.GetResolved(kMci, 0, kEast, &gen), nullptr);
  cache.PutResolved(kMci, 0, kEast, gen, Answer(7));
  auto hit = cache.GetResolved(kMci, 0, kEast, &gen);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->response.sequence(), 7);
  cache.MciChanged(kMci, 8);
  EXPECT_EQ(cache.GetResolved(kMci, 0, kEast, &gen), nullptr);
}

TEST(LaunchCacheTest, RefusalsAreKeptForRevisionsOnly) {
  LaunchCache cache;
  uint64_t gen = 0;
  absl::Status uncovered = absl::FailedPreconditionError("no setting for that cloud");
  cache.GetResolved(kMci, 2, kEast, &gen);
  cache.PutResolved(kMci, 2, kEast, gen, Answer(0, uncovered));
  auto hit = cache.GetResolved(kMci, 2, kEast, &gen);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->status.code(), absl::StatusCode::kFailedPrecondition);
  // HEAD may gain the cloud at any time: its refusal is not kept; nor is NOT_FOUND for anyone.
  cache.GetResolved(kMci, 0, kEast, &gen);
  cache.PutResolved(kMci, 0, kEast, gen, Answer(0, uncovered));
  EXPECT_EQ(cache.GetResolved(kMci, 0, kEast, &gen), nullptr);
  cache.GetResolved(kMci, 3, kEast, &gen);
  cache.PutResolved(kMci, 3, kEast, gen, Answer(0, absl::NotFoundError("gone")));
  EXPECT_EQ(cache.GetResolved(kMci, 3, kEast, &gen), nullptr);
  // An event about the MCI drops its revisions' answers too (a deletion).
  cache.MciChanged(kMci, 9);
  EXPECT_EQ(cache.GetResolved(kMci, 2, kEast, &gen), nullptr);
}

}  // namespace
}  // namespace mci::templates
