#pragma once

// An in-process read-through cache whose entries are dropped by group (an MCI, a template) when
// the thing they were read from changes, with a generation per group so that a read that raced
// with a change never caches what it read:
//
//   uint64_t generation;
//   if (auto hit = cache.Get(group, key, &generation)) return *hit;
//   Value v = ReadFromTheDatabase();          // a change here calls Invalidate(group)...
//   cache.Put(group, key, generation, v, …);  // ...so this Put is ignored
//
// Entries carry their own expiry (absl::InfiniteFuture() for immutable ones), the safety net for
// a replica that missed an invalidation. Sharded, read-mostly: Get takes a shared lock.
//
// Expiring entries that are being read can be refreshed ahead of their expiry, off the request
// path and many in one database read: DueBefore lists them with their generation, and a Put
// with that generation replaces them (or is ignored if their group changed meanwhile, as any
// Put). An entry not read since it was stored is not listed: it expires, and its next reader
// reads it again.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mci {

// The lifetime of an expiring entry: `ttl` times a factor in [0.5, 1), drawn per call. Entries
// filled together (a cache warmed at once, a restart) then do not all expire in the same instant
// and send their reads to the database together; none lives longer than `ttl`.
inline absl::Duration JitteredTtl(absl::Duration ttl) {
  thread_local uint64_t state = 0x9e3779b97f4a7c15ull ^
                                static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) ^
                                static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&state));
  state ^= state << 13;  // xorshift64
  state ^= state >> 7;
  state ^= state << 17;
  const double unit = static_cast<double>(state >> 11) * 0x1.0p-53;  // [0, 1)
  return ttl * (0.5 + 0.5 * unit);
}

// The key of an answer for one revision (0: HEAD) and cloud within its MCI's group, as the
// catalog's ResolveCache and the templates' LaunchCache keep them; HeadCloudOfKey reads a HEAD
// key's cloud back (nullopt for a committed revision's, which never expire).
inline std::string RevisionCloudKey(int64_t revision, const std::string& cloud) {
  return absl::StrCat(revision, "|", cloud);
}
inline std::optional<std::string> HeadCloudOfKey(const std::string& key) {
  constexpr char kHeadPrefix[] = "0|";
  if (!absl::StartsWith(key, kHeadPrefix)) return std::nullopt;
  return key.substr(sizeof(kHeadPrefix) - 1);
}

template <typename Value>
class GenerationCache {
 public:
  // At most about `max_groups` groups are kept; a full shard starts over (cheaper than LRU
  // bookkeeping on every hit, and the working set of the launch path is small).
  explicit GenerationCache(size_t max_groups = 200000)
      : max_per_shard_(std::max<size_t>(1, max_groups / kShards)) {}

  // The cached value, or null with `*generation` set for a later Put.
  std::shared_ptr<const Value> Get(const std::string& group, const std::string& key,
                                   uint64_t* generation) {
    Shard& shard = ShardFor(group);
    {
      std::shared_lock<std::shared_mutex> lock(shard.mu);
      auto it = shard.groups.find(group);
      if (it != shard.groups.end()) {
        auto e = it->second.entries.find(key);
        if (e != it->second.entries.end() && e->second.expires > absl::Now()) {
          // Checked first: after the first hit the flag's cache line is only read.
          if (!e->second.read->load(std::memory_order_relaxed)) {
            e->second.read->store(true, std::memory_order_relaxed);
          }
          return e->second.value;
        }
        *generation = it->second.generation;
        return nullptr;
      }
    }
    std::unique_lock<std::shared_mutex> lock(shard.mu);
    if (shard.groups.size() >= max_per_shard_) shard.groups.clear();
    auto [it, inserted] = shard.groups.try_emplace(group, Group{next_generation_++, {}});
    *generation = it->second.generation;
    return nullptr;
  }

  // Stores `value` unless the group changed since the Get that handed out `generation`.
  void Put(const std::string& group, const std::string& key, uint64_t generation,
           std::shared_ptr<const Value> value, absl::Time expires) {
    Shard& shard = ShardFor(group);
    std::unique_lock<std::shared_mutex> lock(shard.mu);
    auto it = shard.groups.find(group);
    if (it == shard.groups.end() || it->second.generation != generation) return;
    it->second.entries[key] =
        Entry{std::move(value), expires, std::make_unique<std::atomic<bool>>(false)};
  }

  // An entry due for a refresh: its group and key, and the generation to Put the refresh with.
  struct Due {
    std::string group;
    std::string key;
    uint64_t generation;
  };
  // The entries with a finite expiry before `before` (expired or not) that were read since they
  // were stored, at most `limit` of them.
  std::vector<Due> DueBefore(absl::Time before, size_t limit) {
    std::vector<Due> out;
    for (Shard& shard : shards_) {
      std::shared_lock<std::shared_mutex> lock(shard.mu);
      for (const auto& [group, g] : shard.groups) {
        for (const auto& [key, entry] : g.entries) {
          if (out.size() >= limit) return out;
          if (entry.expires < before && entry.expires != absl::InfiniteFuture() &&
              entry.read->load(std::memory_order_relaxed)) {
            out.push_back(Due{group, key, g.generation});
          }
        }
      }
    }
    return out;
  }

  // Drops the group's entries; reads of it in flight will not be cached.
  void Invalidate(const std::string& group) {
    Shard& shard = ShardFor(group);
    std::unique_lock<std::shared_mutex> lock(shard.mu);
    shard.groups.erase(group);
  }

  void Clear() {
    for (Shard& shard : shards_) {
      std::unique_lock<std::shared_mutex> lock(shard.mu);
      shard.groups.clear();
    }
  }

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    std::shared_ptr<const Value> value;
    absl::Time expires;
    // Whether a Get returned it since it was stored (set under the shared lock, hence atomic;
    // behind a pointer so that entries stay movable in the map).
    std::unique_ptr<std::atomic<bool>> read;
  };
  struct Group {
    uint64_t generation;
    absl::flat_hash_map<std::string, Entry> entries;
  };
  struct Shard {
    std::shared_mutex mu;
    absl::flat_hash_map<std::string, Group> groups;
  };
  Shard& ShardFor(const std::string& group) {
    return shards_[absl::Hash<std::string>{}(group) % kShards];
  }

  size_t max_per_shard_;
  std::atomic<uint64_t> next_generation_{1};
  std::array<Shard, kShards> shards_;
};

}  // namespace mci
