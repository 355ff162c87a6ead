#pragma once

// The launch path's in-process caches: ResolveLaunch answers from memory when the template and
// the catalog's answer for its MCI are both here.
//
// - Templates, HEAD and committed revisions. This replica's own writes drop a template's entries
//   at once; other replicas announce theirs on kTemplateChangesSubject (core NATS, best effort),
//   and entries expire within `head_ttl` (JitteredTtl) as the safety net for a missed
//   announcement (committed revisions too: a template's deletion drops them).
// - The catalog's ResolveImage answers: name@N for good (revisions are immutable; a cloud it
//   does not cover stays uncovered), HEAD until an MCI event about that MCI arrives (every
//   replica subscribes to mci.v1.events.>) or its `head_ttl` lifetime passes. An answer is cached
//   only when it is at least as new as the latest event seen for its MCI (its `sequence`), so a
//   catalog replica that has not heard of a change yet cannot plant a stale answer here.
//
// Both use GenerationCache's guard: a read that raced with an invalidation is not cached. The
// expiring entries in use are refreshed ahead of their expiry (DueTemplates, DueAnswers;
// ServerTemplateLogic::RefreshDueLaunches), so only the first launch of a template waits.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/common/generation_cache.h"
#include "mci/catalog/v1/catalog.pb.h"
#include "services/templates/model.h"

namespace mci::templates {

// Core NATS subject on which replicas announce template changes; payload "{account}/{template}".
inline constexpr char kTemplateChangesSubject[] = "mci.v1.cache.server-templates";

class LaunchCache {
 public:
  struct Resolved {
    absl::Status status;  // OK, or FAILED_PRECONDITION for a revision that lacks the cloud
    mci::catalog::v1::ResolveImageResponse response;
    // When cached and OK: the ResolveLaunchResponse that names this MCI (revision) and carries
    // `response`, serialized once; a launch answered from memory replies with these bytes.
    std::string launch_wire;
  };

  explicit LaunchCache(absl::Duration head_ttl = absl::Seconds(10), size_t max_entries = 100000);

  std::shared_ptr<const TemplateRecord> GetTemplate(const std::string& account,
                                                    const std::string& template_id,
                                                    int64_t revision, uint64_t* generation);
  void PutTemplate(const TemplateRecord& record, uint64_t generation);
  void TemplateChanged(const std::string& account, const std::string& template_id);

  // `mci` is the HEAD name; `revision` 0 for HEAD.
  std::shared_ptr<const Resolved> GetResolved(const std::string& mci, int64_t revision,
                                              const std::string& cloud, uint64_t* generation);
  // Stores a catalog answer; HEAD answers only when OK and not older than the latest event seen.
  void PutResolved(const std::string& mci, int64_t revision, const std::string& cloud,
                   uint64_t generation, Resolved resolved);
  // An MCI event (from any catalog replica): drops the MCI's answers, remembers its sequence.
  void MciChanged(const std::string& mci, int64_t sequence);

  // The expiring entries read since they were stored that expire before `before`, at most
  // `limit` of each kind (GenerationCache::DueBefore): refreshed ahead of their expiry, off the
  // request path, by Put-ting them again with their generation (ignored if they changed since).
  struct DueTemplate {
    std::string account;
    std::string template_id;
    int64_t revision;
    uint64_t generation;
  };
  std::vector<DueTemplate> DueTemplates(absl::Time before, size_t limit);
  // HEAD answers only: a revision's never expire.
  struct DueAnswer {
    std::string mci;
    std::string cloud;
    uint64_t generation;
  };
  std::vector<DueAnswer> DueAnswers(absl::Time before, size_t limit);

 private:
  absl::Duration head_ttl_;
  size_t max_entries_;
  GenerationCache<TemplateRecord> templates_;
  GenerationCache<Resolved> resolved_;
  std::mutex sequences_mu_;
  absl::flat_hash_map<std::string, int64_t> sequences_;  // latest event sequence per MCI
};

}  // namespace mci::templates
