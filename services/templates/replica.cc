#include "services/templates/replica.h"

namespace mci::templates {

using mci::events::v1::MultiCloudImageEvent;

ReplicaState EventState(const MultiCloudImageEvent& event) {
  if (event.type() == MultiCloudImageEvent::DELETED) return ReplicaState::kDeleted;
  switch (event.state()) {
    case MultiCloudImageEvent::STATE_ACTIVE:
      return ReplicaState::kActive;
    case MultiCloudImageEvent::STATE_DELETING:
      return ReplicaState::kDeleting;
    case MultiCloudImageEvent::STATE_DELETED:
      return ReplicaState::kDeleted;
    default:
      break;
  }
  return event.type() == MultiCloudImageEvent::DELETION_STARTED ? ReplicaState::kDeleting
                                                                : ReplicaState::kActive;
}

absl::Time EventTime(const MultiCloudImageEvent& event) {
  return absl::FromUnixSeconds(event.event_time().seconds()) +
         absl::Nanoseconds(event.event_time().nanos());
}

ReplicaUpdate DecideReplicaUpdate(const std::optional<StoredReplica>& stored,
                                  const MultiCloudImageEvent& event) {
  if (!stored.has_value()) return ReplicaUpdate::kApply;
  if (stored->state == ReplicaState::kDeleted) {
    // Sequences restart with a new MCI of the same name; its CREATED event is the only one that
    // may follow a tombstone, and it happens after the deletion.
    if (event.type() == MultiCloudImageEvent::CREATED && stored->tombstone_time.has_value() &&
        EventTime(event) > *stored->tombstone_time) {
      return ReplicaUpdate::kReplace;
    }
    return ReplicaUpdate::kIgnore;
  }
  if (event.sequence() <= stored->sequence) return ReplicaUpdate::kIgnore;
  return ReplicaUpdate::kApply;
}

}  // namespace mci::templates
