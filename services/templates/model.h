#pragma once

// Domain records of the template-reference service (no gRPC or database types).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace mci::templates {

// One MCI reference held by a template HEAD or a committed template revision.
struct Reference {
  // The MCI's HEAD name, accounts/{a}/multiCloudImages/{m}.
  std::string mci;
  // 0 references HEAD, N pins committed revision N.
  int64_t mci_revision = 0;
  bool is_default = false;
  int position = 0;

  bool operator==(const Reference& o) const {
    return mci == o.mci && mci_revision == o.mci_revision;
  }
};

struct TemplateRecord {
  // Database id; the keyset of ListServerTemplates.
  int64_t row_id = 0;
  std::string account;
  std::string template_id;
  // 0 for HEAD.
  int64_t revision = 0;
  std::string display_name;
  std::string description;
  std::string cloned_from;
  std::string commit_message;
  int64_t latest_revision = 0;
  // HEAD's version (the etag).
  int64_t version = 0;
  absl::Time create_time;
  absl::Time update_time;
  // Default first, then in the order they were added.
  std::vector<Reference> references;
};

// States of the MCI replica, numbered as mci.events.v1.MultiCloudImageEvent.State.
enum class ReplicaState { kActive = 1, kDeleting = 2, kDeleted = 3 };

// What this service knows of a catalog MCI.
struct ReplicaRecord {
  std::string mci;
  std::string account;
  std::string display_name;
  ReplicaState state = ReplicaState::kActive;
  int64_t sequence = 0;
  // Bumped on every change of the row, for optimistic writes of catalog answers.
  int64_t row_version = 0;
  std::vector<std::string> head_clouds;
  std::map<int64_t, std::vector<std::string>> revision_clouds;
  std::optional<absl::Time> tombstone_time;

  // Clouds of HEAD (revision 0) or of revision N; nullptr when unknown.
  const std::vector<std::string>* Clouds(int64_t revision) const {
    if (revision == 0) return &head_clouds;
    auto it = revision_clouds.find(revision);
    return it == revision_clouds.end() ? nullptr : &it->second;
  }
};

// The catalog's answer about one MCI (HEAD or a revision), to be recorded in the replica.
struct CatalogState {
  std::string mci;
  std::string account;
  std::string display_name;
  // 0 when the answer was about HEAD.
  int64_t revision = 0;
  std::vector<std::string> clouds;
  // The MCI's event sequence the answer reflects (MultiCloudImage.sequence; 0 from a catalog
  // that does not say): the replica ignores events up to it, which the answer already shows.
  int64_t sequence = 0;
};

// A reference seen from the MCI side: the Xref.
struct Usage {
  std::string account;
  std::string template_id;
  int64_t template_row_id = 0;
  int64_t template_revision = 0;
  std::string mci;
  int64_t mci_revision = 0;
  bool is_default = false;
};

struct Reservation {
  bool reserved = false;
  std::vector<Usage> usages;
};

}  // namespace mci::templates
