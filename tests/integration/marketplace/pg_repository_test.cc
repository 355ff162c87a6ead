// The marketplace's SQL against a real PostgreSQL: visibility, keyset pages, each revision once,
// etags, import records and lineage from events (replays ignored, deletions honoured).
#include "services/marketplace/pg_repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "libs/common/db.h"
#include "services/marketplace/migrations.h"
#include "tests/support/stack.h"

namespace mci::marketplace {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class PgRepositoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { postgres_ = new mci::testing::TestPostgres(); }
  static void TearDownTestSuite() {
    delete postgres_;
    postgres_ = nullptr;
  }

  void SetUp() override {
    // A database of its own for every test.
    static int counter = 0;
    url_ = postgres_->CreateDatabase(absl::StrCat("marketplace_", ++counter));
    ASSERT_TRUE(db::Migrate(url_, Migrations()).ok());
    pool_ = std::make_unique<db::Pool>(url_, 2);
    repository_ = std::make_unique<PgRepository>(pool_.get());
  }

  PublicationRecord Record(const std::string& id, int64_t revision,
                           v1::Visibility visibility = v1::PUBLIC,
                           std::vector<std::string> shared_with = {}) {
    PublicationRecord p;
    p.id = id;
    p.publisher = "a";
    p.multi_cloud_image = "accounts/a/multiCloudImages/centos";
    p.revision = revision;
    p.lineage = "accounts/a/multiCloudImages/centos";
    p.visibility = visibility;
    p.shared_with = std::move(shared_with);
    p.snapshot.set_name(absl::StrCat(p.multi_cloud_image, "@", revision));
    p.snapshot.set_display_name("CentOS");
    p.snapshot.set_description(absl::StrCat("revision ", revision));
    auto* s = p.snapshot.add_settings();
    s->set_cloud("clouds/aws-us-east-1");
    s->set_image("clouds/aws-us-east-1/images/centos-5-4-x64-v5-6");
    return p;
  }

  static mci::testing::TestPostgres* postgres_;
  std::string url_;
  std::unique_ptr<db::Pool> pool_;
  std::unique_ptr<PgRepository> repository_;
};

mci::testing::TestPostgres* PgRepositoryTest::postgres_ = nullptr;

TEST_F(PgRepositoryTest, StoresTheSnapshotAndPublishesEachRevisionOnce) {
  ASSERT_TRUE(repository_->InsertPublication(Record("p1", 1), "req-1").ok());
  auto read = repository_->GetPublication("p1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->snapshot.description(), "revision 1");
  EXPECT_EQ(read->snapshot.settings(0).image(), "clouds/aws-us-east-1/images/centos-5-4-x64-v5-6");
  EXPECT_EQ(read->version, 1);
  EXPECT_GT(read->seq, 0);

  absl::Status twice = repository_->InsertPublication(Record("p2", 1), "");
  EXPECT_EQ(twice.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(twice.message().find("already published"), absl::string_view::npos);
  // HEAD may be published again.
  EXPECT_TRUE(repository_->InsertPublication(Record("h1", 0), "").ok());
  EXPECT_TRUE(repository_->InsertPublication(Record("h2", 0), "").ok());

  auto by_request = repository_->FindByRequestId("a", "req-1");
  ASSERT_TRUE(by_request.ok());
  ASSERT_TRUE(by_request->has_value());
  EXPECT_EQ((*by_request)->id, "p1");
  auto by_revision = repository_->FindByRevision("accounts/a/multiCloudImages/centos", 1);
  ASSERT_TRUE(by_revision.ok() && by_revision->has_value());
  EXPECT_EQ(repository_->GetPublication("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PgRepositoryTest, ListsWhatTheViewerMaySeeNewestFirstInPages) {
  ASSERT_TRUE(repository_->InsertPublication(Record("p1", 1), "").ok());
  ASSERT_TRUE(repository_->InsertPublication(Record("p2", 2, v1::SHARED, {"b"}), "").ok());
  ASSERT_TRUE(repository_->InsertPublication(Record("p3", 3, v1::SHARED, {"b", "c"}), "").ok());
  auto ids = [&](PublicationQuery q) {
    std::vector<std::string> out;
    auto listed = repository_->ListPublications(q);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const auto& p : *listed) out.push_back(p.id);
    }
    return out;
  };
  PublicationQuery q;
  q.viewer = "b";
  EXPECT_THAT(ids(q), ElementsAre("p3", "p2", "p1"));
  q.viewer = "c";
  EXPECT_THAT(ids(q), ElementsAre("p3", "p1"));
  q.viewer = "d";
  EXPECT_THAT(ids(q), ElementsAre("p1"));
  q.viewer = "a";
  EXPECT_THAT(ids(q), ElementsAre("p3", "p2", "p1"));

  q.limit = 2;
  auto first = repository_->ListPublications(q);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2u);
  q.before_seq = first->back().seq;
  EXPECT_THAT(ids(q), ElementsAre("p1"));

  PublicationQuery newer;
  newer.viewer = "b";
  newer.multi_cloud_image = "accounts/a/multiCloudImages/centos";
  newer.min_revision_exclusive = 1;
  EXPECT_THAT(ids(newer), ElementsAre("p3", "p2"));
  newer.lineage = "accounts/z/multiCloudImages/other";
  EXPECT_THAT(ids(newer), IsEmpty());

  auto shared = repository_->GetPublication("p3");
  ASSERT_TRUE(shared.ok());
  EXPECT_THAT(shared->shared_with, ElementsAre("b", "c"));
}

TEST_F(PgRepositoryTest, ChangesSharingUnderAnEtag) {
  ASSERT_TRUE(repository_->InsertPublication(Record("p1", 1), "").ok());
  auto updated = repository_->UpdateSharing("p1", v1::SHARED, {"b"}, 1);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->visibility, v1::SHARED);
  EXPECT_THAT(updated->shared_with, ElementsAre("b"));
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(repository_->UpdateSharing("p1", v1::PUBLIC, {}, 1).status().code(),
            absl::StatusCode::kAborted);
  auto unconditional = repository_->UpdateSharing("p1", v1::PUBLIC, {}, 0);
  ASSERT_TRUE(unconditional.ok());
  EXPECT_THAT(unconditional->shared_with, IsEmpty());
  EXPECT_EQ(repository_->UpdateSharing("nope", v1::PUBLIC, {}, 0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(PgRepositoryTest, KeepsOneImportRecordPerAccountAndPublication) {
  ASSERT_TRUE(repository_->InsertPublication(Record("p1", 1), "").ok());
  auto first = repository_->BeginImport("b", "p1");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->multi_cloud_image.empty());
  EXPECT_EQ(first->attempt, 1);
  ASSERT_TRUE(repository_->FinishImport("b", "p1", "accounts/b/multiCloudImages/imp").ok());
  auto again = repository_->BeginImport("b", "p1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->multi_cloud_image, "accounts/b/multiCloudImages/imp");
  auto restarted = repository_->RestartImport("b", "p1");
  ASSERT_TRUE(restarted.ok());
  EXPECT_EQ(restarted->attempt, 2);
  EXPECT_TRUE(restarted->multi_cloud_image.empty());
}

TEST_F(PgRepositoryTest, FollowsClonesAcrossAccountsAndIgnoresReplays) {
  ASSERT_TRUE(repository_->InsertPublication(Record("p1", 1), "").ok());
  ASSERT_TRUE(repository_->FinishImport("b", "p1", "accounts/b/multiCloudImages/imp").ok());
  ASSERT_TRUE(repository_->FinishImport("c", "p1", "accounts/c/multiCloudImages/imp").ok());
  const std::string lineage = "accounts/a/multiCloudImages/centos";
  auto apply = [&](const std::string& name, const std::string& kind, const std::string& source,
                   int64_t sequence, bool deleted) {
    LineageEvent e;
    e.multi_cloud_image = name;
    e.account = name.substr(9, 1);
    e.lineage = lineage;
    e.origin_kind = kind;
    e.origin_source = source;
    e.sequence = sequence;
    e.deleted = deleted;
    ASSERT_TRUE(repository_->ApplyLineageEvent(e).ok());
  };
  apply("accounts/b/multiCloudImages/imp", "IMPORTED", "publications/p1", 1, false);
  apply("accounts/b/multiCloudImages/clone", "CLONED", "accounts/b/multiCloudImages/imp@1", 1,
        false);
  apply("accounts/b/multiCloudImages/clone2", "CLONED", "accounts/b/multiCloudImages/clone", 1,
        false);
  apply("accounts/b/multiCloudImages/unrelated", "CREATED", "", 1, false);

  auto usage = repository_->GetUsage("p1");
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_THAT(usage->importing_accounts, ElementsAre("b", "c"));
  EXPECT_EQ(usage->import_count, 2);
  EXPECT_THAT(usage->clones, ElementsAre("accounts/b/multiCloudImages/clone",
                                         "accounts/b/multiCloudImages/clone2"));

  // The intermediate clone is deleted: its descendant still counts, it does not.
  apply("accounts/b/multiCloudImages/clone", "CLONED", "accounts/b/multiCloudImages/imp@1", 5,
        true);
  // A replayed older event does not bring it back.
  apply("accounts/b/multiCloudImages/clone", "CLONED", "accounts/b/multiCloudImages/imp@1", 4,
        false);
  // Deleting an import no longer counts it.
  apply("accounts/c/multiCloudImages/imp", "IMPORTED", "publications/p1", 3, true);
  usage = repository_->GetUsage("p1");
  ASSERT_TRUE(usage.ok());
  EXPECT_THAT(usage->clones, ElementsAre("accounts/b/multiCloudImages/clone2"));
  EXPECT_EQ(usage->import_count, 1);
  EXPECT_THAT(usage->importing_accounts, ElementsAre("b", "c")) << "who ever imported it";
}

TEST_F(PgRepositoryTest, AppliesABatchOfLineageEventsWholeOrNotAtAll) {
  auto event = [](const std::string& id, const std::string& lineage, int64_t sequence) {
    LineageEvent e;
    e.multi_cloud_image = "accounts/b/multiCloudImages/" + id;
    e.account = "b";
    e.lineage = lineage;
    e.origin_kind = lineage.empty() ? "" : "CLONED";
    e.origin_source = lineage.empty() ? "" : lineage + "@1";
    e.sequence = sequence;
    return e;
  };
  auto rows = [&] {
    pqxx::connection c(url_);
    pqxx::nontransaction n(c);
    std::vector<std::string> out;
    for (const auto& r : n.exec("SELECT multi_cloud_image, lineage, sequence FROM lineage_mcis"
                                " ORDER BY 1")) {
      out.push_back(absl::StrCat(r[0].c_str(), " ", r[1].c_str(), " ", r[2].c_str()));
    }
    return out;
  };
  // The second event cannot be stored (its key is past the index's row size limit): the first,
  // though fine, is not kept either.
  std::string huge;
  uint32_t x = 12345;  // pseudo-random, so that compression cannot bring it under the limit
  for (int i = 0; i < 9000; ++i) {
    x = x * 1103515245u + 12345u;
    huge.push_back(static_cast<char>('a' + (x >> 16) % 26));
  }
  EXPECT_FALSE(repository_
                   ->ApplyLineageEvents(
                       {event("a", "accounts/b/multiCloudImages/l1", 1), event(huge, "", 1)})
                   .ok());
  EXPECT_THAT(rows(), IsEmpty());

  // Each event as ApplyLineageEvent would: an empty lineage keeps the known one, an older
  // sequence (out of order within the batch) changes nothing.
  ASSERT_TRUE(
      repository_
          ->ApplyLineageEvents({event("a", "accounts/b/multiCloudImages/l1", 1),
                                event("c", "accounts/b/multiCloudImages/l3", 1), event("a", "", 3),
                                event("a", "accounts/b/multiCloudImages/l2", 2)})
          .ok());
  EXPECT_THAT(rows(),
              ElementsAre("accounts/b/multiCloudImages/a accounts/b/multiCloudImages/l1 3",
                          "accounts/b/multiCloudImages/c accounts/b/multiCloudImages/l3 1"));
}

}  // namespace
}  // namespace mci::marketplace
