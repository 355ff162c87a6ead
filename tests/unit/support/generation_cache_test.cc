// GenerationCache's expiry helper: expiring entries filled together must not expire together.
#include "libs/common/generation_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
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

}  // namespace
}  // namespace mci
