#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/common/status.h"

namespace mci::db {

// A fixed-size pool of PostgreSQL connections. Connections are opened lazily, prepared with the
// service's statements by `on_connect`, and dropped (to be reopened) when found broken.
class Pool {
 public:
  using OnConnect = std::function<void(pqxx::connection&)>;
  Pool(std::string url, int size, OnConnect on_connect = nullptr);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs `fn` with a connection. Database exceptions become statuses (see FromDatabaseException);
  // a broken connection is discarded.
  template <typename Fn>
  absl::Status Run(Fn&& fn) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    absl::Status status;
    try {
      status = fn(**conn);
    } catch (const std::exception& e) {
      status = FromDatabaseException(e);
    }
    Release(std::move(*conn), status.code() == absl::StatusCode::kUnavailable);
    return status;
  }

  // Runs `fn` in a read-write transaction, retrying it on serialization failures.
  template <typename Fn>
  absl::Status Transact(Fn&& fn) {
    return Retried([&] {
      return Run([&](pqxx::connection& c) -> absl::Status {
        pqxx::work txn(c);
        absl::Status s = fn(txn);
        if (s.ok()) txn.commit();
        return s;
      });
    });
  }

  // A transaction two round trips cheaper than Transact: `fn` gets a nontransaction and sends
  // BEGIN with its first statement and COMMIT with its last (simple-protocol queries, "BEGIN;
  // ..." and "...; COMMIT") when it succeeds. When it fails or throws, this rolls back; a
  // connection that cannot roll back is dropped. Retried as Transact is.
  template <typename Fn>
  absl::Status TransactInline(Fn&& fn) {
    return Retried([&] {
      return Run([&](pqxx::connection& c) -> absl::Status {
        pqxx::nontransaction txn(c);
        absl::Status s;
        try {
          s = fn(txn);
        } catch (const pqxx::broken_connection&) {
          throw;  // dropped by Run, and the server ends the transaction
        } catch (const std::exception&) {
          RollBack(txn);
          throw;
        }
        if (!s.ok()) RollBack(txn);
        return s;
      });
    });
  }

  // SELECT 1 on a pooled connection, for readiness.
  bool Ping();
  const std::string& url() const { return url_; }

 private:
  // `attempt()` again, up to five times in all, while it fails on a serialization failure or a
  // deadlock (ABORTED "concurrent change", see FromDatabaseException).
  template <typename Attempt>
  static absl::Status Retried(Attempt&& attempt) {
    absl::Status status;
    for (int i = 0; i < 5; ++i) {
      status = attempt();
      if (status.code() != absl::StatusCode::kAborted ||
          status.message().find("concurrent change") == absl::string_view::npos) {
        break;
      }
    }
    return status;
  }
  // ROLLBACK (harmless when no transaction is open); throws broken_connection when it fails.
  static void RollBack(pqxx::nontransaction& txn);
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire();
  void Release(std::unique_ptr<pqxx::connection> conn, bool broken);

  std::string url_;
  int size_;
  OnConnect on_connect_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  int open_ = 0;
};

// "EXECUTE name('a', 'b')": a statement prepared on the connection (prepare_now), run inside a
// simple-protocol query so that BEGIN, COMMIT or other statements can share its round trip.
template <typename... Args>
std::string Execute(pqxx::transaction_base& txn, const char* statement, const Args&... args) {
  std::string out = absl::StrCat("EXECUTE ", txn.quote_name(statement));
  if constexpr (sizeof...(args) > 0) {
    const char* separator = "(";
    ((out += separator, out += txn.quote(args), separator = ", "), ...);
    out += ")";
  }
  return out;
}

// Statements sent in one round trip (one simple-protocol query, by libpqxx's pipeline), each
// with its own result, in order: for statements that do not need each other's results. A failing
// statement throws as txn.exec would, and the ones after it do not run. Each must be a single
// statement (semicolons inside its quoted values are fine), or the results would not line up.
std::vector<pqxx::result> Together(pqxx::transaction_base& txn,
                                   const std::vector<std::string>& statements);

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// Applies the migrations not yet recorded in schema_migrations, in version order, each in its own
// transaction, under a PostgreSQL advisory lock so that replicas starting together apply each once.
absl::Status Migrate(const std::string& url, const std::vector<Migration>& migrations);

// Waits until the database accepts connections or `timeout` passes.
absl::Status WaitForDatabase(const std::string& url, absl::Duration timeout);

}  // namespace mci::db
