// GenerationCache's expiry helper (expiring entries filled together must not expire together) and
// its refresh ahead of expiry (DueBefore, then Put with the listed generation).
#include "libs/common/generation_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace mci {
namespace {

TEST(JitteredTtlTest, LifetimesSpreadOverTheSecondHalfOfTheTtl) {
  const absl::Duration ttl = absl::Seconds(10);
  std::vector<absl::Duration> lifetimes;
  for (int i = 0; i < 1000; ++i) lifetimes.push_back(JitteredTtl(ttl));
  for (absl::Duration d : lifetimes) {
    EXPECT_GE(d, ttl / 2);
    EXPECT_LT(d, ttl);
  }
  auto [low, high] = std::minmax_element(lifetimes.begin(), lifetimes.end());
  // 1,000 draws over 5 s: spread over most of it, not bunched in one instant.
  EXPECT_GT(*high - *low, absl::Seconds(4));
  const auto early = std::count_if(lifetimes.begin(), lifetimes.end(),
                                   [&](absl::Duration d) { return d < ttl * 0.75; });
  EXPECT_GT(early, 300);
  EXPECT_LT(early, 700);
}

std::vector<std::string> Keys(const std::vector<GenerationCache<int>::Due>& due) {
  std::vector<std::string> out;
  for (const auto& d : due) out.push_back(d.group + ":" + d.key);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GenerationCacheTest, DueListsExpiringEntriesThatWereReadSinceStored) {
  GenerationCache<int> cache;
  const absl::Time now = absl::Now();
  uint64_t g = 0;
  auto fill = [&](const std::string& group, const std::string& key, absl::Time expires) {
    ASSERT_EQ(cache.Get(group, key, &g), nullptr);
    cache.Put(group, key, g, std::make_shared<const int>(1), expires);
  };
  fill("a", "soon", now + absl::Seconds(1));
  fill("a", "later", now + absl::Seconds(30));
  fill("b", "forever", absl::InfiniteFuture());  // a committed revision: never due
  fill("c", "unread", now + absl::Seconds(1));
  // Nothing read yet: nothing due.
  EXPECT_TRUE(cache.DueBefore(now + absl::Seconds(2), 100).empty());
  for (const char* key : {"soon", "later"}) ASSERT_NE(cache.Get("a", key, &g), nullptr);
  ASSERT_NE(cache.Get("b", "forever", &g), nullptr);
  EXPECT_EQ(Keys(cache.DueBefore(now + absl::Seconds(2), 100)), std::vector<std::string>{"a:soon"});
  EXPECT_EQ(Keys(cache.DueBefore(now + absl::Minutes(1), 100)),
            (std::vector<std::string>{"a:later", "a:soon"}));
  EXPECT_EQ(cache.DueBefore(now + absl::Minutes(1), 1).size(), 1u);
}

TEST(GenerationCacheTest, RefreshReplacesTheEntryUnlessItsGroupChanged) {
  GenerationCache<int> cache;
  uint64_t g = 0;
  ASSERT_EQ(cache.Get("a", "k", &g), nullptr);
  cache.Put("a", "k", g, std::make_shared<const int>(1), absl::Now() + absl::Seconds(1));
  ASSERT_NE(cache.Get("a", "k", &g), nullptr);
  auto due = cache.DueBefore(absl::Now() + absl::Seconds(2), 100);
  ASSERT_EQ(due.size(), 1u);
  // The refresh's read, put back with the listed generation: the new value and lifetime.
  cache.Put(due[0].group, due[0].key, due[0].generation, std::make_shared<const int>(2),
            absl::Now() + absl::Seconds(30));
  auto hit = cache.Get("a", "k", &g);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(*hit, 2);
  // Its new lifetime counts (the Get above read it again, so it is listed before that one ends).
  EXPECT_TRUE(cache.DueBefore(absl::Now() + absl::Seconds(2), 100).empty());
  EXPECT_EQ(cache.DueBefore(absl::Now() + absl::Minutes(1), 100).size(), 1u);

  // A change of the group between the listing and the refresh's Put: the Put is ignored, so a
  // read made before the change is not cached after it.
  due = cache.DueBefore(absl::Now() + absl::Minutes(1), 100);
  ASSERT_EQ(due.size(), 1u);
  cache.Invalidate("a");
  ASSERT_EQ(cache.Get("a", "k", &g), nullptr);  // the group comes back with a new generation
  cache.Put(due[0].group, due[0].key, due[0].generation, std::make_shared<const int>(3),
            absl::Now() + absl::Seconds(30));
  EXPECT_EQ(cache.Get("a", "k", &g), nullptr);
}

// A HEAD key gives its cloud back whole (a cloud name holds no "|" but may hold anything else);
// a committed revision's key, "10|…" included, is not HEAD's.
TEST(RevisionCloudKeyTest, HeadKeysGiveTheirCloudBack) {
  EXPECT_EQ(RevisionCloudKey(0, "clouds/aws-us-east-1"), "0|clouds/aws-us-east-1");
  EXPECT_EQ(HeadCloudOfKey(RevisionCloudKey(0, "clouds/aws-us-east-1")), "clouds/aws-us-east-1");
  EXPECT_EQ(HeadCloudOfKey(RevisionCloudKey(0, "")), "");
  EXPECT_EQ(HeadCloudOfKey(RevisionCloudKey(1, "clouds/a")), std::nullopt);
  EXPECT_EQ(HeadCloudOfKey(RevisionCloudKey(10, "clouds/a")), std::nullopt);
  EXPECT_EQ(HeadCloudOfKey("0"), std::nullopt);
}

}  // namespace
}  // namespace mci
