#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "mci/catalog/v1/catalog.pb.h"

namespace mci::catalog {

// In-process cache of ResolveImage answers, the launch hot path. Committed revisions are immutable
// and stay cached; HEAD answers expire after `head_ttl` as a safety net. The catalog's own writes
// invalidate an MCI at once; other replicas' writes arrive as MCI_EVENTS and invalidate it too.
// A generation per MCI keeps a read that raced with a write from caching what it read.
class ResolveCache {
 public:
  struct Answer {
    absl::Status status;  // OK or FAILED_PRECONDITION (cloud not covered)
    mci::catalog::v1::ResolveImageResponse response;
  };

  explicit ResolveCache(absl::Duration head_ttl = absl::Seconds(10), size_t max_mcis = 200000);

  // The cached answer, or nullopt with `*generation` set for a later Put.
  std::optional<Answer> Get(const std::string& mci_key, int64_t revision, const std::string& cloud,
                            uint64_t* generation);
  void Put(const std::string& mci_key, int64_t revision, const std::string& cloud,
           uint64_t generation, Answer answer);
  void Invalidate(const std::string& mci_key);
  void Clear();

 private:
  struct Cached {
    Answer answer;
    absl::Time expires;  // InfiniteFuture for committed revisions
  };
  struct Mci {
    uint64_t generation;
    absl::flat_hash_map<std::string, Cached> answers;  // "<revision>|<cloud>"
  };
  struct Shard {
    std::shared_mutex mu;
    absl::flat_hash_map<std::string, Mci> mcis;
  };
  Shard& ShardFor(const std::string& key);

  absl::Duration head_ttl_;
  size_t max_per_shard_;
  std::atomic<uint64_t> next_generation_{1};
  std::array<Shard, 16> shards_;
};

// GetMultiCloudImage answers for committed revisions (name@N). A revision is immutable, but its
// answer also carries HEAD's state and latest revision, so an MCI's entries are dropped on every
// change of that MCI, exactly as ResolveCache's are (own writes at once, other replicas' by
// events); the same generation guard keeps a read that raced with a write from being cached.
// HEAD is not cached: its etag must reflect the latest write on any replica.
class RevisionCache {
 public:
  explicit RevisionCache(size_t max_mcis = 200000);
  // The cached answer, or null with `*generation` set for a later Put.
  std::shared_ptr<const mci::catalog::v1::MultiCloudImage> Get(const std::string& mci_key,
                                                               int64_t revision,
                                                               uint64_t* generation);
  void Put(const std::string& mci_key, int64_t revision, uint64_t generation,
           std::shared_ptr<const mci::catalog::v1::MultiCloudImage> answer);
  void Invalidate(const std::string& mci_key);

 private:
  struct Mci {
    uint64_t generation;
    absl::flat_hash_map<int64_t, std::shared_ptr<const mci::catalog::v1::MultiCloudImage>> answers;
  };
  struct Shard {
    std::shared_mutex mu;
    absl::flat_hash_map<std::string, Mci> mcis;
  };
  Shard& ShardFor(const std::string& key);

  size_t max_per_shard_;
  std::atomic<uint64_t> next_generation_{1};
  std::array<Shard, 16> shards_;
};

}  // namespace mci::catalog
