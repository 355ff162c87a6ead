#pragma once

#include <memory>

#include "libs/common/db.h"
#include "services/marketplace/repository.h"

namespace mci::marketplace {

// The Repository in PostgreSQL (schema: migrations/).
class PgRepository : public Repository {
 public:
  explicit PgRepository(db::Pool* pool) : pool_(pool) {}

  absl::Status InsertPublication(const PublicationRecord& publication,
                                 const std::string& request_id) override;
  absl::StatusOr<PublicationRecord> GetPublication(const std::string& id) override;
  absl::StatusOr<std::optional<PublicationRecord>> FindByRequestId(
      const std::string& publisher, const std::string& request_id) override;
  absl::StatusOr<std::optional<PublicationRecord>> FindByRevision(
      const std::string& multi_cloud_image, int64_t revision) override;
  absl::StatusOr<std::vector<PublicationRecord>> ListPublications(
      const PublicationQuery& query) override;
  absl::StatusOr<PublicationRecord> UpdateSharing(const std::string& id, v1::Visibility visibility,
                                                  const std::vector<std::string>& accounts,
                                                  int64_t expected_version) override;
  absl::StatusOr<ImportRecord> BeginImport(const std::string& account,
                                           const std::string& publication_id) override;
  absl::Status FinishImport(const std::string& account, const std::string& publication_id,
                            const std::string& multi_cloud_image) override;
  absl::StatusOr<ImportRecord> RestartImport(const std::string& account,
                                             const std::string& publication_id) override;
  absl::StatusOr<UsageRecord> GetUsage(const std::string& publication_id) override;
  absl::Status ApplyLineageEvent(const LineageEvent& event) override;
  absl::Status ApplyLineageEvents(const std::vector<LineageEvent>& events) override;

 private:
  db::Pool* pool_;
};

}  // namespace mci::marketplace
