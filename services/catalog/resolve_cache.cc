#include "services/catalog/resolve_cache.h"

#include "absl/time/clock.h"

namespace mci::catalog {
namespace {

absl::Time Expiry(int64_t revision, absl::Duration head_ttl) {
  return revision == 0 ? absl::Now() + JitteredTtl(head_ttl) : absl::InfiniteFuture();
}

}  // namespace

std::shared_ptr<const ResolveCache::Answer> ResolveCache::Get(const std::string& mci_key,
                                                              int64_t revision,
                                                              const std::string& cloud,
                                                              uint64_t* generation) {
  return cache_.Get(mci_key, RevisionCloudKey(revision, cloud), generation);
}

std::shared_ptr<const ResolveCache::Answer> ResolveCache::Put(const std::string& mci_key,
                                                              int64_t revision,
                                                              const std::string& cloud,
                                                              uint64_t generation, Answer answer) {
  if (answer.status.ok()) answer.response.SerializeToString(&answer.wire);
  auto entry = std::make_shared<const Answer>(std::move(answer));
  cache_.Put(mci_key, RevisionCloudKey(revision, cloud), generation, entry, Expiry(revision, head_ttl_));
  return entry;
}

std::vector<ResolveCache::DueHead> ResolveCache::DueHeads(absl::Time before, size_t limit) {
  std::vector<DueHead> out;
  for (auto& due : cache_.DueBefore(before, limit)) {
    // Only HEAD's entries expire, so every due one is HEAD's.
    if (auto cloud = HeadCloudOfKey(due.key)) {
      out.push_back(DueHead{std::move(due.group), *std::move(cloud), due.generation});
    }
  }
  return out;
}

std::shared_ptr<const MciCache::Entry> MciCache::Get(const std::string& mci_key, int64_t revision,
                                                     uint64_t* generation) {
  return cache_.Get(mci_key, std::to_string(revision), generation);
}

std::shared_ptr<const MciCache::Entry> MciCache::Put(const std::string& mci_key, int64_t revision,
                                                     uint64_t generation,
                                                     mci::catalog::v1::MultiCloudImage answer) {
  auto entry = std::make_shared<Entry>();
  entry->message = std::move(answer);
  entry->message.SerializeToString(&entry->wire);
  std::shared_ptr<const Entry> out = entry;
  cache_.Put(mci_key, std::to_string(revision), generation, out, Expiry(revision, head_ttl_));
  return out;
}

std::vector<MciCache::DueHead> MciCache::DueHeads(absl::Time before, size_t limit) {
  std::vector<DueHead> out;
  for (auto& due : cache_.DueBefore(before, limit)) {
    // Only HEAD's entries (key "0") expire; the check keeps it so if that changes.
    if (due.key == "0") out.push_back(DueHead{std::move(due.group), due.generation});
  }
  return out;
}

}  // namespace mci::catalog
