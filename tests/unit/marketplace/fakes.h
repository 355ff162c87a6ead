#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "services/marketplace/catalog_client.h"
#include "services/marketplace/repository.h"

namespace mci::marketplace::testing {

// Repository in memory, with the visibility and ordering rules of the SQL.
class FakeRepository : public Repository {
 public:
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

  std::map<std::string, LineageEvent> lineage;

 private:
  std::vector<PublicationRecord> publications_;
  std::map<std::pair<std::string, std::string>, std::string> request_ids_;
  std::map<std::pair<std::string, std::string>, ImportRecord> imports_;
  int64_t seq_ = 0;
};

// The catalog in memory: MCIs by full name (HEAD or @N), per-account visibility by name prefix,
// images by name, and imports that honour request ids and mirror the published revision.
class FakeCatalog : public CatalogClient {
 public:
  absl::StatusOr<catalog::v1::MultiCloudImage> GetMultiCloudImage(const std::string& token,
                                                                  const std::string& name) override;
  absl::StatusOr<std::vector<catalog::v1::Image>> ListImages(const std::string& token,
                                                             const std::string& parent) override;
  absl::StatusOr<catalog::v1::MultiCloudImage> ImportMultiCloudImage(
      const std::string& token, const catalog::v1::ImportMultiCloudImageRequest& request) override;

  // Stores an MCI revision (name@N) or HEAD, with its settings.
  void Put(const catalog::v1::MultiCloudImage& mci) { mcis[mci.name()] = mci; }

  // Tokens in these tests are the account id itself.
  std::map<std::string, catalog::v1::MultiCloudImage> mcis;
  std::vector<catalog::v1::Image> images;
  std::vector<catalog::v1::ImportMultiCloudImageRequest> import_calls;
  std::map<std::string, std::string> request_ids;
  int next_id = 1;
};

}  // namespace mci::marketplace::testing
