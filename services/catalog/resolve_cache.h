#pragma once

#include <array>
#include <atomic>
#include <cstdint>
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

}  // namespace mci::catalog
