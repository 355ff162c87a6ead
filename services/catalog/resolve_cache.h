#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/common/generation_cache.h"
#include "mci/catalog/v1/catalog.pb.h"

namespace mci::catalog {

// In-process cache of ResolveImage answers, the launch hot path. Committed revisions are immutable
// and stay cached; HEAD answers expire within `head_ttl` (JitteredTtl) as a safety net. The
// catalog's own writes invalidate an MCI at once; other replicas' writes arrive as MCI_EVENTS and
// invalidate it too. A generation per MCI keeps a read that raced with a write from caching what it
// read.
class ResolveCache {
 public:
  struct Answer {
    absl::Status status;  // OK or FAILED_PRECONDITION (cloud not covered)
    mci::catalog::v1::ResolveImageResponse response;
    std::string wire;  // `response` serialized (when OK): a hit replies with these bytes
  };

  explicit ResolveCache(absl::Duration head_ttl = absl::Seconds(10), size_t max_mcis = 200000)
      : head_ttl_(head_ttl), cache_(max_mcis) {}

  // The cached answer, or null with `*generation` set for a later Put.
  std::shared_ptr<const Answer> Get(const std::string& mci_key, int64_t revision,
                                    const std::string& cloud, uint64_t* generation);
  // Caches `answer` (serializing its response) and returns the entry.
  std::shared_ptr<const Answer> Put(const std::string& mci_key, int64_t revision,
                                    const std::string& cloud, uint64_t generation, Answer answer);
  void Invalidate(const std::string& mci_key) { cache_.Invalidate(mci_key); }
  void Clear() { cache_.Clear(); }

  // A HEAD answer due for its refresh (GenerationCache::DueBefore): Put it again with these.
  struct DueHead {
    std::string mci_key;
    std::string cloud;
    uint64_t generation;
  };
  std::vector<DueHead> DueHeads(absl::Time before, size_t limit);

 private:
  absl::Duration head_ttl_;
  GenerationCache<Answer> cache_;
};

// GetMultiCloudImage answers, HEAD and committed revisions (name@N). A revision is immutable, but
// its answer also carries HEAD's state and latest revision, so an MCI's entries are dropped on
// every change of that MCI, exactly as ResolveCache's are (own writes at once, other replicas' by
// events), with the same generation guard. HEAD answers also expire within `head_ttl`. Another
// replica's write shows here once its event arrives (milliseconds); an Update made with an etag
// read in that window fails its etag check (ABORTED) rather than losing a write.
class MciCache {
 public:
  // The answer, and the same serialized once: a hit replies with these bytes as they are, which
  // spares copying the message (~1 KiB in a dozen allocations) and serializing it on every call.
  struct Entry {
    mci::catalog::v1::MultiCloudImage message;
    std::string wire;
  };

  explicit MciCache(absl::Duration head_ttl = absl::Seconds(10), size_t max_mcis = 200000)
      : head_ttl_(head_ttl), cache_(max_mcis) {}

  std::shared_ptr<const Entry> Get(const std::string& mci_key, int64_t revision,
                                   uint64_t* generation);
  // Caches `answer` (and its serialization) and returns the entry.
  std::shared_ptr<const Entry> Put(const std::string& mci_key, int64_t revision,
                                   uint64_t generation, mci::catalog::v1::MultiCloudImage answer);
  void Invalidate(const std::string& mci_key) { cache_.Invalidate(mci_key); }

  // A HEAD answer due for its refresh (GenerationCache::DueBefore): Put it again with these.
  struct DueHead {
    std::string mci_key;
    uint64_t generation;
  };
  std::vector<DueHead> DueHeads(absl::Time before, size_t limit);

 private:
  absl::Duration head_ttl_;
  GenerationCache<Entry> cache_;
};

}  // namespace mci::catalog
