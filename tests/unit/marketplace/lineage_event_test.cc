#include <gtest/gtest.h>

#include "mci/events/v1/events.pb.h"
#include "services/marketplace/lineage_consumer.h"

namespace mci::marketplace {
namespace {

using events::v1::MultiCloudImageEvent;

TEST(ParseLineageEventTest, ReadsOriginAndSequence) {
  MultiCloudImageEvent event;
  event.set_type(MultiCloudImageEvent::CREATED);
  event.set_multi_cloud_image("accounts/b/multiCloudImages/clone");
  event.set_sequence(3);
  event.set_origin_kind("CLONED");
  event.set_origin_source("accounts/b/multiCloudImages/imported@1");
  event.set_lineage("accounts/a/multiCloudImages/centos");
  auto parsed = ParseLineageEvent(event.SerializeAsString());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->account, "b");
  EXPECT_EQ(parsed->multi_cloud_image, "accounts/b/multiCloudImages/clone");
  EXPECT_EQ(parsed->origin_kind, "CLONED");
  EXPECT_EQ(parsed->origin_source, "accounts/b/multiCloudImages/imported@1");
  EXPECT_EQ(parsed->lineage, "accounts/a/multiCloudImages/centos");
  EXPECT_EQ(parsed->sequence, 3);
  EXPECT_FALSE(parsed->deleted);
}

TEST(ParseLineageEventTest, ADeletedEventRemovesTheMultiCloudImage) {
  MultiCloudImageEvent event;
  event.set_type(MultiCloudImageEvent::DELETED);
  event.set_multi_cloud_image("accounts/b/multiCloudImages/clone");
  event.set_sequence(9);
  auto parsed = ParseLineageEvent(event.SerializeAsString());
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->deleted);
}

TEST(ParseLineageEventTest, RejectsUnreadablePayloads) {
  EXPECT_FALSE(ParseLineageEvent("\xff\xff\xff").ok());
  MultiCloudImageEvent no_name;
  no_name.set_sequence(1);
  EXPECT_FALSE(ParseLineageEvent(no_name.SerializeAsString()).ok());
  MultiCloudImageEvent no_sequence;
  no_sequence.set_multi_cloud_image("accounts/b/multiCloudImages/x");
  EXPECT_FALSE(ParseLineageEvent(no_sequence.SerializeAsString()).ok());
}

}  // namespace
}  // namespace mci::marketplace
