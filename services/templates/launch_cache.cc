#include "services/templates/launch_cache.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "mci/templates/v1/templates.pb.h"
#include "services/templates/names.h"

namespace mci::templates {
namespace {

std::string TemplateGroup(const std::string& account, const std::string& template_id) {
  return absl::StrCat(account, "/", template_id);
}

}  // namespace

LaunchCache::LaunchCache(absl::Duration head_ttl, size_t max_entries)
    : head_ttl_(head_ttl),
      max_entries_(max_entries),
      templates_(max_entries),
      resolved_(max_entries) {}

std::shared_ptr<const TemplateRecord> LaunchCache::GetTemplate(const std::string& account,
                                                               const std::string& template_id,
                                                               int64_t revision,
                                                               uint64_t* generation) {
  return templates_.Get(TemplateGroup(account, template_id), std::to_string(revision), generation);
}

void LaunchCache::PutTemplate(const TemplateRecord& record, uint64_t generation) {
  // Committed revisions expire too: they do not change, but a deletion whose announcement was
  // lost must not leave them launchable for good.
  absl::Time expires = absl::Now() + JitteredTtl(head_ttl_);
  templates_.Put(TemplateGroup(record.account, record.template_id), std::to_string(record.revision),
                 generation, std::make_shared<const TemplateRecord>(record), expires);
}

void LaunchCache::TemplateChanged(const std::string& account, const std::string& template_id) {
  templates_.Invalidate(TemplateGroup(account, template_id));
}

std::shared_ptr<const LaunchCache::Resolved> LaunchCache::GetResolved(const std::string& mci,
                                                                      int64_t revision,
                                                                      const std::string& cloud,
                                                                      uint64_t* generation) {
  return resolved_.Get(mci, RevisionCloudKey(revision, cloud), generation);
}

void LaunchCache::PutResolved(const std::string& mci, int64_t revision, const std::string& cloud,
                              uint64_t generation, Resolved resolved) {
  absl::Time expires = absl::InfiniteFuture();
  if (revision == 0) {
    if (!resolved.status.ok()) return;
    std::lock_guard<std::mutex> lock(sequences_mu_);
    auto it = sequences_.find(mci);
    if (it != sequences_.end() && resolved.response.sequence() < it->second) return;
    expires = absl::Now() + JitteredTtl(head_ttl_);
  } else if (!resolved.status.ok() &&
             resolved.status.code() != absl::StatusCode::kFailedPrecondition) {
    return;
  }
  if (resolved.status.ok()) {
    v1::ResolveLaunchResponse launch;
    launch.set_multi_cloud_image(MultiCloudImageResourceName(mci, revision));
    *launch.mutable_image() = resolved.response;
    launch.SerializeToString(&resolved.launch_wire);
  }
  resolved_.Put(mci, RevisionCloudKey(revision, cloud), generation,
                std::make_shared<const Resolved>(std::move(resolved)), expires);
}

void LaunchCache::MciChanged(const std::string& mci, int64_t sequence) {
  {
    std::lock_guard<std::mutex> lock(sequences_mu_);
    if (sequences_.size() >= max_entries_) sequences_.clear();
    int64_t& latest = sequences_[mci];
    latest = std::max(latest, sequence);
  }
  resolved_.Invalidate(mci);
}

std::vector<LaunchCache::DueTemplate> LaunchCache::DueTemplates(absl::Time before, size_t limit) {
  std::vector<DueTemplate> out;
  for (auto& due : templates_.DueBefore(before, limit)) {
    std::pair<std::string, std::string> name = absl::StrSplit(due.group, absl::MaxSplits('/', 1));
    int64_t revision = 0;
    if (!absl::SimpleAtoi(due.key, &revision)) continue;
    out.push_back(DueTemplate{std::move(name.first), std::move(name.second), revision,
                              due.generation});
  }
  return out;
}

std::vector<LaunchCache::DueAnswer> LaunchCache::DueAnswers(absl::Time before, size_t limit) {
  std::vector<DueAnswer> out;
  for (auto& due : resolved_.DueBefore(before, limit)) {
    auto cloud = HeadCloudOfKey(due.key);
    if (!cloud.has_value()) continue;  // only HEAD's expire
    out.push_back(DueAnswer{std::move(due.group), *std::move(cloud), due.generation});
  }
  return out;
}

}  // namespace mci::templates
