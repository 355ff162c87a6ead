#pragma once

// Storage of templates, references, the MCI replica and deletion fences. Every method is one
// database transaction.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mci/events/v1/events.pb.h"
#include "services/templates/model.h"

namespace mci::templates {

class Repository {
 public:
  virtual ~Repository() = default;

  struct NewTemplate {
    std::string account;
    std::string template_id;
    std::string display_name;
    std::string description;
    std::string cloned_from;
    // Empty when the caller sent none.
    std::string request_id;
    // References of a clone's source, copied to the new HEAD (fences are checked).
    std::vector<Reference> references;
  };
  // A request_id seen before returns the template it created.
  virtual absl::StatusOr<TemplateRecord> CreateTemplate(const NewTemplate& t) = 0;
  virtual absl::StatusOr<TemplateRecord> GetTemplate(const std::string& account,
                                                     const std::string& template_id,
                                                     int64_t revision) = 0;
  struct TemplateKey {
    std::string account;
    std::string template_id;
    int64_t revision = 0;  // 0: HEAD
  };
  // The templates of `keys` that exist (HEADs and committed revisions), in one read, in no
  // particular order; those that do not are left out. For refreshing many at once.
  virtual absl::StatusOr<std::vector<TemplateRecord>> GetTemplates(
      const std::vector<TemplateKey>& keys) = 0;
  // HEADs with row_id > after_row_id, by row_id.
  virtual absl::StatusOr<std::vector<TemplateRecord>> ListTemplates(const std::string& account,
                                                                    int64_t after_row_id,
                                                                    int limit) = 0;
  struct TemplateUpdate {
    std::optional<std::string> display_name;
    std::optional<std::string> description;
    // 0: no etag check.
    int64_t expected_version = 0;
  };
  virtual absl::StatusOr<TemplateRecord> UpdateTemplate(const std::string& account,
                                                        const std::string& template_id,
                                                        const TemplateUpdate& update) = 0;
  // Deletes HEAD and every committed revision.
  virtual absl::Status DeleteTemplate(const std::string& account, const std::string& template_id,
                                      int64_t expected_version) = 0;
  // Snapshots HEAD into the next revision. HEAD references to an MCI in `pins` are pinned to that
  // revision; any other HEAD reference is FAILED_PRECONDITION.
  virtual absl::StatusOr<TemplateRecord> CommitTemplate(
      const std::string& account, const std::string& template_id, int64_t expected_version,
      const std::string& message, const std::map<std::string, int64_t>& pins) = 0;

  // Reference edits of a template HEAD. Add is refused while a deletion fence stands.
  virtual absl::StatusOr<TemplateRecord> AddReference(const std::string& account,
                                                      const std::string& template_id,
                                                      const Reference& reference,
                                                      bool make_default) = 0;
  virtual absl::StatusOr<TemplateRecord> RemoveReference(const std::string& account,
                                                         const std::string& template_id,
                                                         const Reference& reference) = 0;
  virtual absl::StatusOr<TemplateRecord> SetDefaultReference(const std::string& account,
                                                             const std::string& template_id,
                                                             const Reference& reference) = 0;

  struct UsageKey {
    int64_t template_row_id = 0;
    int64_t template_revision = -1;
    int64_t mci_revision = -1;
  };
  // References to `mci` (revision nullopt: any revision and HEAD), after `after`, in key order.
  virtual absl::StatusOr<std::vector<Usage>> ListUsages(const std::string& mci,
                                                        std::optional<int64_t> mci_revision,
                                                        const UsageKey& after, int limit) = 0;

  // The replica rows of these MCIs (HEAD names); missing ones are absent from the map.
  virtual absl::StatusOr<std::map<std::string, ReplicaRecord>> GetReplicas(
      const std::vector<std::string>& mcis) = 0;
  // Records what the catalog answered. The HEAD row is written only when it is still at
  // `expected_row_version` (nullopt: only when absent), so an answer older than a tombstone
  // written meanwhile never revives a deleted MCI. Revision rows are always added.
  virtual absl::Status RecordCatalogState(const CatalogState& state,
                                          std::optional<int64_t> expected_row_version) = 0;
  // Applies one event idempotently (sequence) together with its effect on deletion fences: true
  // when it changed the replica, false when the replica had it or a newer one already (a
  // redelivery, or an event overtaken by a later one).
  virtual absl::StatusOr<bool> ApplyEvent(const mci::events::v1::MultiCloudImageEvent& event) = 0;
  // Applies a batch of events in one transaction (all or none), each as ApplyEvent would; events
  // of one MCI keep their order. Which of them changed the replica, in the batch's order.
  virtual absl::StatusOr<std::vector<bool>> ApplyEvents(
      const std::vector<mci::events::v1::MultiCloudImageEvent>& events) {
    std::vector<bool> changed;
    for (const auto& e : events) {
      absl::StatusOr<bool> one = ApplyEvent(e);
      if (!one.ok()) return one.status();
      changed.push_back(*one);
    }
    return changed;
  }

  // True while a deletion fence stands for the MCI (HEAD name).
  virtual absl::StatusOr<bool> DeletionFenced(const std::string& mci) = 0;
  // The deletion saga, idempotent per deletion id.
  virtual absl::StatusOr<Reservation> ReserveDeletion(const std::string& mci,
                                                      const std::string& deletion_id) = 0;
  virtual absl::Status ReleaseDeletion(const std::string& mci, const std::string& deletion_id,
                                       bool deleted) = 0;

  virtual bool Healthy() = 0;
};

}  // namespace mci::templates
