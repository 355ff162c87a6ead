// The repository's SQL against a real PostgreSQL: templates read together are what one read
// shows; an event batch is one transaction whose BEGIN and COMMIT ride on its first and last
// statements, so a batch that fails must be rolled back by hand and leave its pooled connection
// clean for the next one.
#include <gtest/gtest.h>

#include <algorithm>
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

// What one template read (GetTemplate) and the batched ones (GetTemplates, ListTemplates) both
// show: the same record, references in the same order.
void ExpectSameTemplate(const TemplateRecord& got, const TemplateRecord& want) {
  const std::string name = absl::StrCat(want.account, "/", want.template_id, "@", want.revision);
  EXPECT_EQ(got.row_id, want.row_id) << name;
  EXPECT_EQ(got.account, want.account) << name;
  EXPECT_EQ(got.template_id, want.template_id) << name;
  EXPECT_EQ(got.revision, want.revision) << name;
  EXPECT_EQ(got.display_name, want.display_name) << name;
  EXPECT_EQ(got.commit_message, want.commit_message) << name;
  EXPECT_EQ(got.latest_revision, want.latest_revision) << name;
  EXPECT_EQ(got.version, want.version) << name;
  EXPECT_EQ(got.create_time, want.create_time) << name;
  EXPECT_EQ(got.update_time, want.update_time) << name;
  ASSERT_EQ(got.references.size(), want.references.size()) << name;
  for (size_t i = 0; i < want.references.size(); ++i) {
    EXPECT_EQ(got.references[i].mci, want.references[i].mci) << name << " #" << i;
    EXPECT_EQ(got.references[i].mci_revision, want.references[i].mci_revision) << name;
    EXPECT_EQ(got.references[i].is_default, want.references[i].is_default) << name;
    EXPECT_EQ(got.references[i].position, want.references[i].position) << name;
  }
}

// Templates read many at once (the launch cache's refresh: HEADs and revisions in one round
// trip; a page of ListServerTemplates: its references in one more) are what one read shows;
// keys of no template are left out, a key asked twice is answered once.
TEST_F(TemplatesPgRepositoryTest, TemplatesReadTogetherAreWhatOneReadShows) {
  PgRepository& repository = *repository_;
  const std::string a = "accounts/acct/multiCloudImages/a", b = "accounts/acct/multiCloudImages/b";
  // Both MCIs known to the replica, with the revisions web's commit pins (a@2, b@5).
  for (const auto& [mci, revision] : {std::pair<std::string, int64_t>{a, 2}, {b, 5}}) {
    Event committed = Created(mci, mci);
    committed.set_type(Event::COMMITTED);
    committed.set_event_id(absl::StrCat(mci, "#2"));
    committed.set_sequence(2);
    committed.set_revision(revision);
    Event::Revision* state = committed.add_revisions();
    state->set_revision(revision);
    state->add_clouds("clouds/aws-us-east-1");
    ASSERT_TRUE(repository.ApplyEvents({Created(mci, mci), committed}).ok());
  }
  auto create = [&](const std::string& account, const std::string& id) {
    Repository::NewTemplate t;
    t.account = account;
    t.template_id = id;
    t.display_name = absl::StrCat("Template ", id);
    auto created = repository.CreateTemplate(t);
    EXPECT_TRUE(created.ok()) << created.status();
  };
  create("acct", "web");
  create("acct", "api");
  create("rival", "web");
  Reference to_a{a, 0, false, 0}, to_b{b, 0, false, 0};
  ASSERT_TRUE(repository.AddReference("acct", "web", to_a, false).ok());
  ASSERT_TRUE(repository.AddReference("acct", "web", to_b, true).ok());  // b first: the default
  auto committed = repository.CommitTemplate("acct", "web", 0, "first", {{a, 2}, {b, 5}});
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_TRUE(repository.AddReference("acct", "api", to_a, false).ok());

  using Key = Repository::TemplateKey;
  const std::vector<Key> wanted = {{"acct", "web", 0}, {"acct", "web", 1}, {"acct", "api", 0}};
  std::vector<Key> keys = wanted;
  keys.push_back({"acct", "missing", 0});
  keys.push_back({"acct", "web", 9});
  keys.push_back({"acct", "it's", 0});  // quoted, not parsed
  keys.push_back({"acct", "web", 0});   // asked twice, read once
  auto together = repository.GetTemplates(keys);
  ASSERT_TRUE(together.ok()) << together.status();
  ASSERT_EQ(together->size(), wanted.size());
  for (const Key& k : wanted) {
    auto one = repository.GetTemplate(k.account, k.template_id, k.revision);
    ASSERT_TRUE(one.ok()) << one.status();
    auto got = std::find_if(together->begin(), together->end(), [&](const TemplateRecord& t) {
      return t.template_id == k.template_id && t.revision == k.revision;
    });
    ASSERT_NE(got, together->end()) << k.template_id << "@" << k.revision;
    ExpectSameTemplate(*got, *one);
  }
  auto web1 = repository.GetTemplate("acct", "web", 1);
  ASSERT_TRUE(web1.ok());
  ASSERT_EQ(web1->references.size(), 2u);
  EXPECT_EQ(web1->references[0].mci, b);
  EXPECT_EQ(web1->references[0].mci_revision, 5);
  EXPECT_EQ(web1->commit_message, "first");

  auto page = repository.ListTemplates("acct", 0, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 2u);  // web, api: by row id
  for (const TemplateRecord& t : *page) {
    auto one = repository.GetTemplate("acct", t.template_id, 0);
    ASSERT_TRUE(one.ok()) << one.status();
    ExpectSameTemplate(t, *one);
  }
  EXPECT_EQ((*page)[0].references.size(), 2u);
  EXPECT_EQ((*page)[1].references.size(), 1u);
  auto none = repository.GetTemplates({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(TemplatesPgRepositoryTest, AFailedEventBatchLeavesNothingAndItsConnectionClean) {
  db::Pool& pool = *pool_;
  PgRepository& repository = *repository_;
  const std::string good = "accounts/acct/multiCloudImages/good";
  const std::string bad = "accounts/acct/multiCloudImages/bad";

  // Not UTF-8: PostgreSQL (or the quoting before it) refuses the batch after its BEGIN went out.
  absl::Status failed =
      repository.ApplyEvents({Created(good, "Good"), Created(bad, std::string("\xff\xfe", 2))})
          .status();
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
  // Each reported as not changing the replica (the propagation histogram leaves such out).
  using Changed = std::vector<bool>;
  auto changed = repository.ApplyEvents({created});
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, Changed{false});
  changed = repository.ApplyEvents({east_added});
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, Changed{false});
  EXPECT_EQ(head().head_clouds, (std::vector<std::string>{east, west}));
  changed = repository.ApplyEvents({west_added});
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, Changed{false});
  EXPECT_EQ(head().head_clouds, (std::vector<std::string>{east, west}));
  EXPECT_EQ(head().sequence, 3);

  // A later event applies: west removed (4).
  Event west_removed = east_added;
  west_removed.set_event_id(mci + "#4");
  west_removed.set_sequence(4);
  absl::StatusOr<bool> one = repository.ApplyEvent(west_removed);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(*one);
  EXPECT_EQ(head().head_clouds, std::vector<std::string>{east});
  EXPECT_EQ(head().sequence, 4);

  // A refresh of a known row keeps the newer of the two sequences: an answer read before the
  // events applied since does not make them count again.
  read.clouds = {east};
  read.sequence = 2;
  ASSERT_TRUE(repository.RecordCatalogState(read, head().row_version).ok());
  EXPECT_EQ(head().sequence, 4);
  one = repository.ApplyEvent(west_added);  // sequence 3: already reflected
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_FALSE(*one);
  EXPECT_EQ(head().head_clouds, std::vector<std::string>{east});
}

// A batch says which of its events changed the replica in the batch's own order, though it
// applies them sorted by MCI: here a redelivery between two new MCIs' events.
TEST_F(TemplatesPgRepositoryTest, ABatchSaysWhichOfItsEventsChangedTheReplica) {
  PgRepository& repository = *repository_;
  const std::string zulu = "accounts/acct/multiCloudImages/zulu";
  const std::string alpha = "accounts/acct/multiCloudImages/alpha";
  const std::string mike = "accounts/acct/multiCloudImages/mike";
  ASSERT_TRUE(repository.ApplyEvent(Created(mike, "Mike")).ok());
  Event mike_again = Created(mike, "Mike");  // its redelivery
  Event alpha_renamed = Created(alpha, "Alpha v2");
  alpha_renamed.set_type(Event::UPDATED);
  alpha_renamed.set_event_id(alpha + "#2");
  alpha_renamed.set_sequence(2);
  auto changed = repository.ApplyEvents(
      {Created(zulu, "Zulu"), mike_again, Created(alpha, "Alpha"), alpha_renamed});
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, (std::vector<bool>{true, false, true, true}));
  auto replicas = repository.GetReplicas({zulu, alpha, mike});
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  EXPECT_EQ(replicas->at(alpha).display_name, "Alpha v2");
  EXPECT_EQ(replicas->at(alpha).sequence, 2);
  EXPECT_EQ(replicas->at(zulu).sequence, 1);
}

}  // namespace
}  // namespace mci::templates
