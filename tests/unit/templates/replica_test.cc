#include "services/templates/replica.h"

#include <gtest/gtest.h>

#include "google/protobuf/util/time_util.h"

namespace mci::templates {
namespace {

using Event = mci::events::v1::MultiCloudImageEvent;

Event MakeEvent(Event::Type type, int64_t sequence, absl::Time time) {
  Event e;
  e.set_type(type);
  e.set_sequence(sequence);
  e.set_multi_cloud_image("accounts/a/multiCloudImages/m");
  *e.mutable_event_time() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(time));
  return e;
}

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

TEST(TemplateReplicaTest, FirstEventOfAnUnknownMciIsApplied) {
  EXPECT_EQ(DecideReplicaUpdate(std::nullopt, MakeEvent(Event::UPDATED, 5, kT0)),
            ReplicaUpdate::kApply);
}

TEST(TemplateReplicaTest, DuplicatesAndOlderEventsAreIgnored) {
  StoredReplica stored{ReplicaState::kActive, 4, std::nullopt};
  EXPECT_EQ(DecideReplicaUpdate(stored, MakeEvent(Event::SETTINGS_CHANGED, 4, kT0)),
            ReplicaUpdate::kIgnore);
  EXPECT_EQ(DecideReplicaUpdate(stored, MakeEvent(Event::CREATED, 1, kT0)), ReplicaUpdate::kIgnore);
  EXPECT_EQ(DecideReplicaUpdate(stored, MakeEvent(Event::DELETED, 3, kT0)), ReplicaUpdate::kIgnore);
  EXPECT_EQ(DecideReplicaUpdate(stored, MakeEvent(Event::COMMITTED, 5, kT0)),
            ReplicaUpdate::kApply);
  // A gap (events lost or still to come) is fine: every event carries the full state.
  EXPECT_EQ(DecideReplicaUpdate(stored, MakeEvent(Event::COMMITTED, 9, kT0)),
            ReplicaUpdate::kApply);
}

TEST(TemplateReplicaTest, RowsFilledFromTheCatalogTakeEveryEvent) {
  StoredReplica from_catalog{ReplicaState::kActive, 0, std::nullopt};
  EXPECT_EQ(DecideReplicaUpdate(from_catalog, MakeEvent(Event::CREATED, 1, kT0)),
            ReplicaUpdate::kApply);
}

TEST(TemplateReplicaTest, TombstonesOnlyGiveWayToANewMciCreatedAfterThem) {
  StoredReplica tombstone{ReplicaState::kDeleted, 7, kT0};
  EXPECT_EQ(DecideReplicaUpdate(tombstone, MakeEvent(Event::SETTINGS_CHANGED, 8, kT0)),
            ReplicaUpdate::kIgnore);
  EXPECT_EQ(
      DecideReplicaUpdate(tombstone, MakeEvent(Event::CREATED, 1, kT0 - absl::Milliseconds(5))),
      ReplicaUpdate::kIgnore);
  EXPECT_EQ(DecideReplicaUpdate(tombstone, MakeEvent(Event::CREATED, 1, kT0)),
            ReplicaUpdate::kIgnore);
  EXPECT_EQ(
      DecideReplicaUpdate(tombstone, MakeEvent(Event::CREATED, 1, kT0 + absl::Milliseconds(5))),
      ReplicaUpdate::kReplace);
}

TEST(TemplateReplicaTest, EventStates) {
  Event e = MakeEvent(Event::DELETED, 3, kT0);
  EXPECT_EQ(EventState(e), ReplicaState::kDeleted);
  e = MakeEvent(Event::DELETION_STARTED, 3, kT0);
  EXPECT_EQ(EventState(e), ReplicaState::kDeleting);
  e.set_state(Event::STATE_DELETING);
  EXPECT_EQ(EventState(e), ReplicaState::kDeleting);
  e = MakeEvent(Event::DELETION_ABORTED, 4, kT0);
  e.set_state(Event::STATE_ACTIVE);
  EXPECT_EQ(EventState(e), ReplicaState::kActive);
  EXPECT_EQ(EventTime(e), kT0);
}

}  // namespace
}  // namespace mci::templates
