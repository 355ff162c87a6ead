#pragma once

#include <memory>

#include "libs/common/db.h"
#include "services/templates/repository.h"

namespace mci::templates {

// The Repository on PostgreSQL (libpqxx). Transactions that touch references or fences of an MCI
// hold a transaction-scoped advisory lock on the MCI's name, always taken after any template row
// lock, so that a new reference and a deletion fence are never both committed.
class PgRepository : public Repository {
 public:
  explicit PgRepository(db::Pool* pool) : pool_(pool) {}
  // Prepares the repository's statements on a new connection (the pool's on-connect hook).
  static void Prepare(pqxx::connection& conn);

  absl::StatusOr<TemplateRecord> CreateTemplate(const NewTemplate& t) override;
  absl::StatusOr<TemplateRecord> GetTemplate(const std::string& account,
                                             const std::string& template_id,
                                             int64_t revision) override;
  absl::StatusOr<std::vector<TemplateRecord>> GetTemplates(
      const std::vector<TemplateKey>& keys) override;
  absl::StatusOr<std::vector<TemplateRecord>> ListTemplates(const std::string& account,
                                                            int64_t after_row_id,
                                                            int limit) override;
  absl::StatusOr<TemplateRecord> UpdateTemplate(const std::string& account,
                                                const std::string& template_id,
                                                const TemplateUpdate& update) override;
  absl::Status DeleteTemplate(const std::string& account, const std::string& template_id,
                              int64_t expected_version) override;
  absl::StatusOr<TemplateRecord> CommitTemplate(
      const std::string& account, const std::string& template_id, int64_t expected_version,
      const std::string& message, const std::map<std::string, int64_t>& pins) override;
  absl::StatusOr<TemplateRecord> AddReference(const std::string& account,
                                              const std::string& template_id,
                                              const Reference& reference,
                                              bool make_default) override;
  absl::StatusOr<TemplateRecord> RemoveReference(const std::string& account,
                                                 const std::string& template_id,
                                                 const Reference& reference) override;
  absl::StatusOr<TemplateRecord> SetDefaultReference(const std::string& account,
                                                     const std::string& template_id,
                                                     const Reference& reference) override;
  absl::StatusOr<std::vector<Usage>> ListUsages(const std::string& mci,
                                                std::optional<int64_t> mci_revision,
                                                const UsageKey& after, int limit) override;
  absl::StatusOr<std::map<std::string, ReplicaRecord>> GetReplicas(
      const std::vector<std::string>& mcis) override;
  absl::Status RecordCatalogState(const CatalogState& state,
                                  std::optional<int64_t> expected_row_version) override;
  absl::StatusOr<bool> ApplyEvent(const mci::events::v1::MultiCloudImageEvent& event) override;
  absl::StatusOr<std::vector<bool>> ApplyEvents(
      const std::vector<mci::events::v1::MultiCloudImageEvent>& events) override;
  absl::StatusOr<bool> DeletionFenced(const std::string& mci) override;
  absl::StatusOr<Reservation> ReserveDeletion(const std::string& mci,
                                              const std::string& deletion_id) override;
  absl::Status ReleaseDeletion(const std::string& mci, const std::string& deletion_id,
                               bool deleted) override;
  bool Healthy() override { return pool_->Ping(); }

 private:
  db::Pool* pool_;
};

}  // namespace mci::templates
