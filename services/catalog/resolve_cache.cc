#include "services/catalog/resolve_cache.h"

#include <mutex>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace mci::catalog {

ResolveCache::ResolveCache(absl::Duration head_ttl, size_t max_mcis)
    : head_ttl_(head_ttl), max_per_shard_(std::max<size_t>(1, max_mcis / 16)) {}

ResolveCache::Shard& ResolveCache::ShardFor(const std::string& key) {
  return shards_[absl::Hash<std::string>{}(key) % shards_.size()];
}

std::optional<ResolveCache::Answer> ResolveCache::Get(const std::string& mci_key, int64_t revision,
                                                      const std::string& cloud,
                                                      uint64_t* generation) {
  Shard& shard = ShardFor(mci_key);
  std::string answer_key = absl::StrCat(revision, "|", cloud);
  {
    std::shared_lock<std::shared_mutex> lock(shard.mu);
    auto it = shard.mcis.find(mci_key);
    if (it != shard.mcis.end()) {
      auto a = it->second.answers.find(answer_key);
      if (a != it->second.answers.end() && a->second.expires > absl::Now()) {
        return a->second.answer;
      }
      *generation = it->second.generation;
      return std::nullopt;
    }
  }
  std::unique_lock<std::shared_mutex> lock(shard.mu);
  if (shard.mcis.size() >= max_per_shard_) shard.mcis.clear();
  auto [it, inserted] = shard.mcis.try_emplace(mci_key, Mci{next_generation_++, {}});
  *generation = it->second.generation;
  return std::nullopt;
}

void ResolveCache::Put(const std::string& mci_key, int64_t revision, const std::string& cloud,
                       uint64_t generation, Answer answer) {
  Shard& shard = ShardFor(mci_key);
  std::unique_lock<std::shared_mutex> lock(shard.mu);
  auto it = shard.mcis.find(mci_key);
  if (it == shard.mcis.end() || it->second.generation != generation) return;
  absl::Time expires = revision == 0 ? absl::Now() + head_ttl_ : absl::InfiniteFuture();
  it->second.answers[absl::StrCat(revision, "|", cloud)] = Cached{std::move(answer), expires};
}

void ResolveCache::Invalidate(const std::string& mci_key) {
  Shard& shard = ShardFor(mci_key);
  std::unique_lock<std::shared_mutex> lock(shard.mu);
  shard.mcis.erase(mci_key);
}

void ResolveCache::Clear() {
  for (Shard& shard : shards_) {
    std::unique_lock<std::shared_mutex> lock(shard.mu);
    shard.mcis.clear();
  }
}

RevisionCache::RevisionCache(size_t max_mcis)
    : max_per_shard_(std::max<size_t>(1, max_mcis / 16)) {}

RevisionCache::Shard& RevisionCache::ShardFor(const std::string& key) {
  return shards_[absl::Hash<std::string>{}(key) % shards_.size()];
}

std::shared_ptr<const mci::catalog::v1::MultiCloudImage> RevisionCache::Get(
    const std::string& mci_key, int64_t revision, uint64_t* generation) {
  Shard& shard = ShardFor(mci_key);
  {
    std::shared_lock<std::shared_mutex> lock(shard.mu);
    auto it = shard.mcis.find(mci_key);
    if (it != shard.mcis.end()) {
      auto a = it->second.answers.find(revision);
      if (a != it->second.answers.end()) return a->second;
      *generation = it->second.generation;
      return nullptr;
    }
  }
  std::unique_lock<std::shared_mutex> lock(shard.mu);
  if (shard.mcis.size() >= max_per_shard_) shard.mcis.clear();
  auto [it, inserted] = shard.mcis.try_emplace(mci_key, Mci{next_generation_++, {}});
  *generation = it->second.generation;
  return nullptr;
}

void RevisionCache::Put(const std::string& mci_key, int64_t revision, uint64_t generation,
                        std::shared_ptr<const mci::catalog::v1::MultiCloudImage> answer) {
  Shard& shard = ShardFor(mci_key);
  std::unique_lock<std::shared_mutex> lock(shard.mu);
  auto it = shard.mcis.find(mci_key);
  if (it == shard.mcis.end() || it->second.generation != generation) return;
  it->second.answers[revision] = std::move(answer);
}

void RevisionCache::Invalidate(const std::string& mci_key) {
  Shard& shard = ShardFor(mci_key);
  std::unique_lock<std::shared_mutex> lock(shard.mu);
  shard.mcis.erase(mci_key);
}

}  // namespace mci::catalog
