#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mci/catalog/v1/catalog.pb.h"
#include "mci/marketplace/v1/marketplace.pb.h"

namespace mci::marketplace {

// A publication as stored. Accounts are bare ids ({account}), MCI names full names.
struct PublicationRecord {
  std::string id;
  std::string publisher;
  // HEAD name of the published MCI.
  std::string multi_cloud_image;
  // 0 for a HEAD publication.
  int64_t revision = 0;
  std::string lineage;
  v1::Visibility visibility = v1::VISIBILITY_UNSPECIFIED;
  // Sorted account ids.
  std::vector<std::string> shared_with;
  catalog::v1::MultiCloudImage snapshot;
  // Grows with every change; the etag.
  int64_t version = 1;
  absl::Time create_time;
  absl::Time update_time;
  // Insertion order: the keyset of listings.
  int64_t seq = 0;
};

struct PublicationQuery {
  // Only what this account may see.
  std::string viewer;
  std::string lineage;
  std::string publisher;
  std::string multi_cloud_image;
  // Only publications with a revision above this one.
  int64_t min_revision_exclusive = -1;
  // Newest first: only seq < before (0 = from the newest).
  int64_t before_seq = 0;
  int limit = 50;
};

struct ImportRecord {
  std::string account;
  std::string publication_id;
  // Empty until the catalog created the MCI.
  std::string multi_cloud_image;
  int attempt = 1;
};

struct UsageRecord {
  std::vector<std::string> importing_accounts;
  int import_count = 0;
  std::vector<std::string> clones;
};

// One catalog event, reduced to what lineage tracking needs.
struct LineageEvent {
  std::string multi_cloud_image;
  std::string account;
  std::string lineage;
  std::string origin_kind;
  std::string origin_source;
  int64_t sequence = 0;
  bool deleted = false;
};

class Repository {
 public:
  virtual ~Repository() = default;

  // ALREADY_EXISTS when the revision (revision > 0) or the id is published already.
  virtual absl::Status InsertPublication(const PublicationRecord& publication,
                                         const std::string& request_id) = 0;
  // NOT_FOUND when absent (visibility is the caller's business).
  virtual absl::StatusOr<PublicationRecord> GetPublication(const std::string& id) = 0;
  virtual absl::StatusOr<std::optional<PublicationRecord>> FindByRequestId(
      const std::string& publisher, const std::string& request_id) = 0;
  virtual absl::StatusOr<std::optional<PublicationRecord>> FindByRevision(
      const std::string& multi_cloud_image, int64_t revision) = 0;
  virtual absl::StatusOr<std::vector<PublicationRecord>> ListPublications(
      const PublicationQuery& query) = 0;
  // ABORTED when expected_version is set (> 0) and differs.
  virtual absl::StatusOr<PublicationRecord> UpdateSharing(const std::string& id,
                                                          v1::Visibility visibility,
                                                          const std::vector<std::string>& accounts,
                                                          int64_t expected_version) = 0;

  // The import record of (account, publication), created when missing.
  virtual absl::StatusOr<ImportRecord> BeginImport(const std::string& account,
                                                   const std::string& publication_id) = 0;
  // Sets the MCI of the record (creating it when missing, as after an update).
  virtual absl::Status FinishImport(const std::string& account, const std::string& publication_id,
                                    const std::string& multi_cloud_image) = 0;
  // The imported MCI is gone: the next import asks the catalog anew (attempt + 1).
  virtual absl::StatusOr<ImportRecord> RestartImport(const std::string& account,
                                                     const std::string& publication_id) = 0;

  virtual absl::StatusOr<UsageRecord> GetUsage(const std::string& publication_id) = 0;
  // Applies an event unless its sequence is not newer than the one applied for that MCI.
  virtual absl::Status ApplyLineageEvent(const LineageEvent& event) = 0;
  // The same for a batch (in stream order), all or nothing.
  virtual absl::Status ApplyLineageEvents(const std::vector<LineageEvent>& events) {
    for (const auto& e : events) {
      if (absl::Status s = ApplyLineageEvent(e); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
};

}  // namespace mci::marketplace
