// The replica's SQL against a real PostgreSQL: an event batch is one transaction whose BEGIN and
// COMMIT ride on its first and last statements, so a batch that fails must be rolled back by hand
// and leave its pooled connection clean for the next one.
#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "libs/common/db.h"
#include "mci/events/v1/events.pb.h"
#include "services/templates/model.h"
#include "services/templates/pg_repository.h"
#include "tests/support/stack.h"

namespace mci::templates {
std::vector<mci::db::Migration> Migrations();  // embedded from services/templates/migrations
namespace {

using Event = mci::events::v1::MultiCloudImageEvent;

Event Created(const std::string& mci, const std::string& display_name) {
  Event e;
  e.set_event_id(absl::StrCat(mci, "#1"));
  e.set_type(Event::CREATED);
  e.set_multi_cloud_image(mci);
  e.set_account("acct");
  e.set_sequence(1);
  *e.mutable_event_time() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(absl::Now()));
  e.set_state(Event::STATE_ACTIVE);
  e.add_head_clouds("clouds/aws-us-east-1");
  e.set_display_name(display_name);
  return e;
}

// The pool's connection holds no lock and is in no transaction.
void ExpectNothingOpen(db::Pool& pool) {
  absl::Status status = pool.Run([](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction n(c);
    EXPECT_EQ(n.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                      " AND pid = pg_backend_pid()")[0]
                  .as<int>(),
              0);
    EXPECT_EQ(n.exec1("SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid()")[0]
                  .as<std::string>(),
              "active")
        << "the connection was left in a transaction";
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;
}

// A migrated database and a repository on a pool of one connection (so that a batch after a
// failed one gets the same connection).
class TemplatesPgRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string url = postgres_.CreateDatabase("templates");
    ASSERT_TRUE(db::Migrate(url, Migrations()).ok());
    pool_ = std::make_unique<db::Pool>(url, 1, &PgRepository::Prepare);
    repository_ = std::make_unique<PgRepository>(pool_.get());
  }
  mci::testing::TestPostgres postgres_;
  std::unique_ptr<db::Pool> pool_;
  std::unique_ptr<PgRepository> repository_;
};

TEST_F(TemplatesPgRepositoryTest, AFailedEventBatchLeavesNothingAndItsConnectionClean) {
  db::Pool& pool = *pool_;
  PgRepository& repository = *repository_;
  const std::string good = "accounts/acct/multiCloudImages/good";
  const std::string bad = "accounts/acct/multiCloudImages/bad";

  // Not UTF-8: PostgreSQL (or the quoting before it) refuses the batch after its BEGIN went out.
  absl::Status failed =
      repository.ApplyEvents({Created(good, "Good"), Created(bad, std::string("\xff\xfe", 2))});
  ASSERT_FALSE(failed.ok());
  ExpectNothingOpen(pool);
  auto none = repository.GetReplicas({good, bad});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty()) << "the failed batch's first event was kept";

  ASSERT_TRUE(repository.ApplyEvents({Created(good, "Good")}).ok());
  ASSERT_TRUE(repository.ApplyEvent(Created(bad, "Bad now")).ok());
  auto both = repository.GetReplicas({good, bad});
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->size(), 2u);
  EXPECT_EQ(both->at(good).sequence, 1);
  EXPECT_EQ(both->at(bad).display_name, "Bad now");

  ExpectNothingOpen(pool);
}

// The catalog's answer about HEAD, recorded with the event sequence it reflects, is not set back
// by the events it already shows that reach the consumer after it (AddMultiCloudImage reads
// the catalog while the MCI's earlier events are still in flight); later events apply.
TEST_F(TemplatesPgRepositoryTest, EventsTheCatalogsAnswerReflectsDoNotSetItBack) {
  PgRepository& repository = *repository_;
  const std::string mci = "accounts/acct/multiCloudImages/both";
  const std::string east = "clouds/aws-us-east-1", west = "clouds/aws-us-west-1";
  auto head = [&] {
    auto replicas = repository.GetReplicas({mci});
    EXPECT_TRUE(replicas.ok()) << replicas.status();
    return replicas.ok() && replicas->count(mci) ? replicas->at(mci) : ReplicaRecord{};
  };

  // Created (1), a setting for east (2), one for west (3): the catalog's read shows the third.
  CatalogState read;
  read.mci = mci;
  read.account = "acct";
  read.display_name = "Both";
  read.clouds = {east, west};
  read.sequence = 3;
  ASSERT_TRUE(repository.RecordCatalogState(read, std::nullopt).ok());
  Event created = Created(mci, "Both");
  created.clear_head_clouds();
  Event east_added = Created(mci, "Both");
  east_added.set_type(Event::SETTINGS_CHANGED);
  east_added.set_event_id(mci + "#2");
  east_added.set_sequence(2);
  Event west_added = east_added;
  west_added.set_event_id(mci + "#3");
  west_added.set_sequence(3);
  west_added.add_head_clouds(west);
  ASSERT_TRUE(repository.ApplyEvents({created}).ok());
  ASSERT_TRUE(repository.ApplyEvents({east_added}).ok());
  EXPECT_EQ(head().head_clouds, (std::vector<std::string>{east, west}));
  ASSERT_TRUE(repository.ApplyEvents({west_added}).ok());
  EXPECT_EQ(head().head_clouds, (std::vector<std::string>{east, west}));
  EXPECT_EQ(head().sequence, 3);

  // A later event applies: west removed (4).
  Event west_removed = east_added;
  west_removed.set_event_id(mci + "#4");
  west_removed.set_sequence(4);
  ASSERT_TRUE(repository.ApplyEvents({west_removed}).ok());
  EXPECT_EQ(head().head_clouds, std::vector<std::string>{east});
  EXPECT_EQ(head().sequence, 4);

  // A refresh of a known row keeps the newer of the two sequences: an answer read before the
  // events applied since does not make them count again.
  read.clouds = {east};
  read.sequence = 2;
  ASSERT_TRUE(repository.RecordCatalogState(read, head().row_version).ok());
  EXPECT_EQ(head().sequence, 4);
  ASSERT_TRUE(repository.ApplyEvents({west_added}).ok());  // sequence 3: already reflected
  EXPECT_EQ(head().head_clouds, std::vector<std::string>{east});
}

}  // namespace
}  // namespace mci::templates
