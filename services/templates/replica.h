#pragma once

// How an MCI event changes the replica: pure rules, unit tested without a database.

#include <optional>

#include "absl/time/time.h"
#include "mci/events/v1/events.pb.h"
#include "services/templates/model.h"

namespace mci::templates {

enum class ReplicaUpdate {
  // Already applied (duplicate), older than what is stored (out of order), or about a deleted
  // MCI: the replica stays as it is.
  kIgnore,
  // Newer state of the MCI stored.
  kApply,
  // A new MCI created under the name of a deleted one: start over.
  kReplace,
};

struct StoredReplica {
  ReplicaState state = ReplicaState::kActive;
  int64_t sequence = 0;
  std::optional<absl::Time> tombstone_time;
};

ReplicaUpdate DecideReplicaUpdate(const std::optional<StoredReplica>& stored,
                                  const mci::events::v1::MultiCloudImageEvent& event);

// The state an event leaves the MCI in (events whose state field is unset get it from the type).
ReplicaState EventState(const mci::events::v1::MultiCloudImageEvent& event);

absl::Time EventTime(const mci::events::v1::MultiCloudImageEvent& event);

}  // namespace mci::templates
