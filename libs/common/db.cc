#include "libs/common/db.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"

namespace mci::db {

Pool::Pool(std::string url, int size, OnConnect on_connect)
    : url_(std::move(url)), size_(std::max(1, size)), on_connect_(std::move(on_connect)) {}

Pool::~Pool() = default;

absl::StatusOr<std::unique_ptr<pqxx::connection>> Pool::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::seconds(10),
                    [&] { return !idle_.empty() || open_ < size_; })) {
    return absl::UnavailableError("No database connection became free within 10 s; try again.");
  }
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  ++open_;
  lock.unlock();
  try {
    auto conn = std::make_unique<pqxx::connection>(url_);
    if (on_connect_) on_connect_(*conn);
    return conn;
  } catch (const std::exception& e) {
    lock.lock();
    --open_;
    cv_.notify_one();
    log::Warn("database connection failed", {{"error", e.what()}});
    return absl::UnavailableError("The database is unavailable; try again later.");
  }
}

void Pool::Release(std::unique_ptr<pqxx::connection> conn, bool broken) {
  std::lock_guard<std::mutex> lock(mu_);
  if (broken || !conn->is_open()) {
    --open_;
  } else {
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

bool Pool::Ping() {
  return Run([](pqxx::connection& c) {
           pqxx::nontransaction txn(c);
           txn.exec("SELECT 1");
           return absl::OkStatus();
         })
      .ok();
}

absl::Status WaitForDatabase(const std::string& url, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::string last_error;
  while (absl::Now() < deadline) {
    try {
      pqxx::connection conn(url);
      return absl::OkStatus();
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return absl::UnavailableError(absl::StrCat("Database not reachable: ", last_error));
}

absl::Status Migrate(const std::string& url, const std::vector<Migration>& migrations) {
  try {
    pqxx::connection conn(url);
    pqxx::nontransaction session(conn);
    // Session-level lock: held across the per-migration transactions below.
    session.exec("SELECT pg_advisory_lock(7262011)");
    session.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    std::vector<Migration> sorted = migrations;
    std::sort(sorted.begin(), sorted.end(),
              [](const Migration& a, const Migration& b) { return a.version < b.version; });
    for (const Migration& m : sorted) {
      auto done =
          session.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", m.version);
      if (!done.empty()) continue;
      session.exec("BEGIN");
      try {
        session.exec(m.sql);
        session.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                            m.version, m.name);
        session.exec("COMMIT");
      } catch (...) {
        session.exec("ROLLBACK");
        throw;
      }
      log::Info("applied migration", {{"version", std::to_string(m.version)}, {"name", m.name}});
    }
    session.exec("SELECT pg_advisory_unlock(7262011)");
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::Status(FromDatabaseException(e).code(),
                        absl::StrCat("Migration failed: ", e.what()));
  }
}

std::vector<pqxx::result> Together(pqxx::transaction_base& txn,
                                   const std::vector<std::string>& statements) {
  std::vector<pqxx::result> results;
  results.reserve(statements.size());
  pqxx::pipeline pipeline(txn);
  // Nothing goes out until the first result is asked for: then all of it at once.
  pipeline.retain(static_cast<int>(statements.size()) + 1);
  std::vector<pqxx::pipeline::query_id> ids;
  ids.reserve(statements.size());
  for (const std::string& statement : statements) ids.push_back(pipeline.insert(statement));
  for (pqxx::pipeline::query_id id : ids) results.push_back(pipeline.retrieve(id));
  pipeline.complete();
  return results;
}

void Pool::RollBack(pqxx::nontransaction& txn) {
  try {
    txn.exec("ROLLBACK");
  } catch (const std::exception&) {
    // A connection in an unknown state must not go back to the pool.
    throw pqxx::broken_connection("cannot roll back a transaction");
  }
}

}  // namespace mci::db
