// libs/common/db.h against a real PostgreSQL: db::Together sends its statements in one round trip
// (one simple-protocol query) and answers each statement's result; db::Execute runs a prepared
// statement by its exact name.
#include "libs/common/db.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "tests/support/stack.h"

namespace mci::db {
namespace {

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = postgres_.CreateDatabase("db_test");
    conn_ = std::make_unique<pqxx::connection>(url_);
    pqxx::nontransaction setup(*conn_);
    setup.exec("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, label text NOT NULL)");
    setup.exec("TRUNCATE items");
    conn_->prepare("InsertItem", "INSERT INTO items (id, label) VALUES ($1, $2)");
    conn_->prepare_now("InsertItem");
    conn_->prepare("count_items", "SELECT count(*) FROM items");
    conn_->prepare_now("count_items");
  }

  mci::testing::TestPostgres postgres_;
  std::string url_;
  std::unique_ptr<pqxx::connection> conn_;
};

TEST_F(DbTest, TogetherAnswersEveryStatementInOrderFromOneQuery) {
  pqxx::nontransaction txn(*conn_);
  std::vector<pqxx::result> r =
      Together(txn, {Execute(txn, "InsertItem", 1, "it's; one"), Execute(txn, "count_items"),
                     "SELECT txid_current()", "SELECT txid_current()"});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].affected_rows(), 1u);
  EXPECT_EQ(r[1][0][0].as<int>(), 1);
  // Statements of one simple-protocol query share its implicit transaction; sent one by one
  // outside a transaction, each would have a transaction (and an id) of its own.
  EXPECT_EQ(r[2][0][0].as<int64_t>(), r[3][0][0].as<int64_t>());
  EXPECT_NE(txn.exec("SELECT txid_current()")[0][0].as<int64_t>(), r[2][0][0].as<int64_t>());
  // The quoting kept the label whole.
  EXPECT_EQ(txn.exec("SELECT label FROM items WHERE id = 1")[0][0].as<std::string>(), "it's; one");
}

TEST_F(DbTest, TogetherThrowsTheFailingStatementsErrorAndRunsNothingAfterIt) {
  {
    pqxx::nontransaction txn(*conn_);
    txn.exec("INSERT INTO items VALUES (1, 'first')");
  }
  pqxx::nontransaction txn(*conn_);
  txn.exec("BEGIN");
  EXPECT_THROW(Together(txn, {Execute(txn, "InsertItem", 2, "second"),
                              Execute(txn, "InsertItem", 1, "again"),
                              Execute(txn, "InsertItem", 3, "third")}),
               pqxx::unique_violation);
  txn.exec("ROLLBACK");
  // The transaction rolled back whole, and the connection serves the next statement.
  EXPECT_EQ(txn.exec("SELECT string_agg(label, ',') FROM items")[0][0].as<std::string>(), "first");
}

TEST_F(DbTest, TogetherCarriesTransactionControl) {
  pqxx::nontransaction txn(*conn_);
  std::vector<pqxx::result> r =
      Together(txn, {"BEGIN", Execute(txn, "InsertItem", 7, "seven"), "COMMIT"});
  ASSERT_EQ(r.size(), 3u);
  // Committed: another connection sees the row.
  pqxx::connection other(url_);
  pqxx::nontransaction check(other);
  EXPECT_EQ(check.exec("SELECT label FROM items WHERE id = 7")[0][0].as<std::string>(), "seven");
}

}  // namespace
}  // namespace mci::db
