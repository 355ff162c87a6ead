#include "services/catalog/outbox_relay.h"

#include <chrono>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/common/log.h"
#include "libs/common/metrics.h"

namespace mci::catalog {
namespace {

constexpr int64_t kRelayLockKey = 7262012;
constexpr int kBatchSize = 256;
// The last column: how long ago the event was written, by the database's clock (not compared with
// this process's).
#define MCI_OUTBOX_COLUMNS \
  "id, event_id, subject, payload, extract(epoch FROM clock_timestamp() - created)::float8"
constexpr char kSelectBatch[] = "SELECT " MCI_OUTBOX_COLUMNS " FROM outbox ORDER BY id LIMIT $1";
// How long a relay that just published lets further commits gather (see Loop).
constexpr std::chrono::milliseconds kLinger{5};
// A batch slower than this (its read and its publishing), or whose oldest event waited longer than
// this before the read, is logged with which of the three it was.
constexpr absl::Duration kSlowBatch = absl::Milliseconds(100);
// The rows of the previous batch (acked) go in the same round trip as the next batch's read; the
// read's snapshot precedes the delete, hence the filter.
constexpr char kDeleteRelayedAndSelect[] =
    "WITH relayed AS (DELETE FROM outbox WHERE id = ANY(string_to_array($1, ',')::bigint[]))"
    " SELECT " MCI_OUTBOX_COLUMNS
    " FROM outbox"
    " WHERE id <> ALL(string_to_array($1, ',')::bigint[]) ORDER BY id LIMIT $2";
constexpr char kBacklog[] = "SELECT count(*) FROM outbox";

// An outbox row's event as published: its payload column is base64.
std::string Payload(const pqxx::row& row) {
  std::string payload;
  absl::Base64Unescape(row[3].c_str(), &payload);
  return payload;
}

}  // namespace

// Publishes a batch pipelined: every message goes out before the first ack is awaited, so a batch
// costs one round trip rather than one per event (at 1,000 writes/s the one-by-one publishing fell
// behind by seconds). One JetStream context for the relay's life (until a batch times out): one per
// batch subscribed and unsubscribed its ack inbox at nats-server every batch, and left its ack
// counters to leak whenever acks were still outstanding at the deadline.
class OutboxRelay::Pipeline {
 public:
  ~Pipeline() { Reset(); }

  // Sends every row's message without waiting for the acks (Complete waits for them). False when
  // the batch did not all go out pipelined (fewer than two rows, no JetStream context, a send
  // refused): the caller then publishes it one by one, and JetStream drops the copies of those it
  // already stored (same Nats-Msg-Id). A message stored after a failed one then precedes it in the
  // stream: harmless, as each event carries the MCI's full state and its sequence, and consumers
  // ignore older sequences.
  bool Send(natsConnection* conn, const pqxx::result& rows) {
    if (conn == nullptr || rows.size() < 2) return false;
    if (js_ == nullptr && !Open(conn)) return false;
    {
      // Acks of an earlier batch that timed out are not this batch's (unless for the same event,
      // which JetStream then did store).
      std::lock_guard<std::mutex> lock(mu_);
      pending_.clear();
      failed_ = 0;
      all_acked_ = absl::InfinitePast();
      for (const auto& row : rows) pending_.insert(row[1].c_str());
    }
    for (const auto& row : rows) {
      const std::string payload = Payload(row);
      jsPubOptions publish;
      jsPubOptions_Init(&publish);
      publish.MsgId = row[1].c_str();
      if (js_PublishAsync(js_, row[2].c_str(), payload.data(), static_cast<int>(payload.size()),
                          &publish) != NATS_OK) {
        Complete();  // what did go out, before the caller sends it again
        return false;
      }
    }
    return true;
  }

  // Waits for the acks of what Send sent, at most 2 s from now. When JetStream acked every
  // message, the time the last ack came; otherwise nullopt.
  std::optional<absl::Time> Complete() {
    if (js_ == nullptr) return std::nullopt;  // nothing was sent through this context
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = 2000;
    const natsStatus complete = js_PublishAsyncComplete(js_, &wait);
    if (complete != NATS_OK) {
      // Acks that never come (a message lost in a reconnection) would stay pending in the
      // context, up to its limit: start afresh.
      Metrics::Global().AddCounter("mci_outbox_relay_publish_timeouts_total", 1);
      Reset();
      return std::nullopt;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!pending_.empty() || failed_ > 0) return std::nullopt;
    return all_acked_;
  }

 private:
  static void OnAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
    auto* self = static_cast<Pipeline*>(closure);
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
      std::lock_guard<std::mutex> lock(self->mu_);
      if (self->pending_.erase(id) > 0) {
        if (ack == nullptr || error != nullptr) ++self->failed_;
        if (self->pending_.empty()) self->all_acked_ = absl::Now();
      }
    }
    natsMsg_Destroy(msg);
  }

  bool Open(natsConnection* conn) {
    jsOptions options;
    jsOptions_Init(&options);
    options.PublishAsync.AckHandler = &Pipeline::OnAck;
    options.PublishAsync.AckHandlerClosure = this;
    options.PublishAsync.MaxPending = 1024;
    if (natsConnection_JetStream(&js_, conn, &options) != NATS_OK) js_ = nullptr;
    return js_ != nullptr;
  }

  // Acks still outstanding are dropped with the context. The destructor's call comes after the
  // relay's thread stopped, its last batch's acks all in or its context reset already.
  void Reset() {
    if (js_ != nullptr) jsCtx_Destroy(js_);
    js_ = nullptr;
  }

  jsCtx* js_ = nullptr;
  std::mutex mu_;
  absl::flat_hash_set<std::string> pending_;  // event ids of the batch not acked yet
  int failed_ = 0;                            // of the batch's, negative acks
  absl::Time all_acked_;                      // when the batch's last ack came
};

OutboxRelay::OutboxRelay(std::string database_url, nats::Client* nats)
    : database_url_(std::move(database_url)),
      nats_(nats),
      pipeline_(std::make_unique<Pipeline>()) {}

OutboxRelay::~OutboxRelay() { Stop(); }

void OutboxRelay::Start() {
  Metrics::Global().DeclareCounters({"mci_outbox_relay_publish_timeouts_total"});
  thread_ = std::thread([this] { Loop(); });
}

void OutboxRelay::Stop() {
  if (stopping_.exchange(true)) return;
  Notify();
  if (thread_.joinable()) thread_.join();
}

void OutboxRelay::Notify() {
  std::lock_guard<std::mutex> lock(mu_);
  pending_ = true;
  cv_.notify_one();
}

OutboxRelay::Batch OutboxRelay::RelayBatch(pqxx::connection& conn) {
  // The batch sent before the relay lingered: its acks came meanwhile, as a rule.
  if (in_flight_.has_value()) {
    const InFlight sent = *std::move(in_flight_);
    in_flight_.reset();
    Batch finished = Finish(conn, sent, pipeline_->Complete());
    if (finished.failed) return finished;
  }
  InFlight batch;
  batch.started = absl::Now();
  {
    pqxx::nontransaction txn(conn);
    // Kept when this throws: deleting them again later is harmless (ids are never reused).
    batch.rows = relayed_.empty() ? txn.exec_params(kSelectBatch, kBatchSize)
                                  : txn.exec_params(kDeleteRelayedAndSelect, relayed_, kBatchSize);
  }
  relayed_.clear();
  batch.read = absl::Now();
  if (nats_->connected() && pipeline_->Send(nats_->connection(), batch.rows)) {
    const int sent = static_cast<int>(batch.rows.size());
    in_flight_ = std::move(batch);
    return Batch{sent, false};
  }
  return Finish(conn, batch, std::nullopt);
}

OutboxRelay::Batch OutboxRelay::Finish(pqxx::connection& conn, const InFlight& batch,
                                       std::optional<absl::Time> all_acked) {
  const pqxx::result& rows = batch.rows;
  std::vector<std::string> relayed;
  if (all_acked.has_value()) {
    for (const auto& row : rows) relayed.push_back(row[0].c_str());
  } else {
    for (const auto& row : rows) {
      absl::Status s =
          nats_->Publish(row[2].c_str(), Payload(row), row[1].c_str(), absl::Seconds(2));
      if (!s.ok()) {
        log::Warn("outbox relay: publish failed; will retry", {{"error", s.ToString()}});
        break;
      }
      relayed.push_back(row[0].c_str());
    }
  }
  relayed_ = absl::StrJoin(relayed, ",");
  // Pipelined, the batch was done when its last ack came (the relay lingered meanwhile).
  const absl::Time done = all_acked.value_or(absl::Now());
  const double read_seconds = absl::ToDoubleSeconds(batch.read - batch.started);
  const double publish_seconds = absl::ToDoubleSeconds(done - batch.read);
  if (!rows.empty()) {
    Metrics& metrics = Metrics::Global();
    metrics.Observe("mci_outbox_relay_read_seconds", read_seconds);
    metrics.Observe("mci_outbox_relay_publish_seconds", publish_seconds);
    // Each acked event: from its write to the end of its batch's publishing (JetStream's ack).
    for (size_t i = 0; i < relayed.size(); ++i) {
      metrics.Observe("mci_outbox_event_delay_seconds", rows[i][4].as<double>() + publish_seconds);
    }
  }
  // How long the batch's oldest event had waited in the outbox when the read began: a relay
  // woken late, or a commit slow to become visible.
  const double waited_seconds = rows.empty() ? 0 : rows[0][4].as<double>() - read_seconds;
  if (done - batch.started > kSlowBatch || waited_seconds > absl::ToDoubleSeconds(kSlowBatch)) {
    // Each of these delays every event of the batch: which side was slow, for whoever asks why.
    log::Warn("outbox relay: slow batch", {{"events", absl::StrCat(rows.size())},
                                           {"waited_ms", absl::StrCat(waited_seconds * 1000)},
                                           {"read_ms", absl::StrCat(read_seconds * 1000)},
                                           {"publish_ms", absl::StrCat(publish_seconds * 1000)}});
  }
  // Counting the backlog costs a scan: only when a publish failed. An empty batch means none.
  if (relayed.size() < rows.size()) {
    pqxx::nontransaction txn(conn);
    Metrics::Global().SetGauge("mci_outbox_backlog", txn.exec(kBacklog)[0][0].as<double>() -
                                                         static_cast<double>(relayed.size()));
  } else if (rows.empty()) {
    Metrics::Global().SetGauge("mci_outbox_backlog", 0);
  }
  return Batch{static_cast<int>(relayed.size()), relayed.size() < rows.size()};
}

void OutboxRelay::Loop() {
  std::unique_ptr<pqxx::connection> conn;
  absl::Time stop_deadline = absl::InfiniteFuture();
  while (true) {
    if (stopping_ && stop_deadline == absl::InfiniteFuture()) {
      stop_deadline = absl::Now() + absl::Seconds(3);
    }
    if (absl::Now() > stop_deadline) break;
    Batch batch;
    try {
      if (conn == nullptr || !conn->is_open()) {
        leader_ = false;
        conn = std::make_unique<pqxx::connection>(database_url_);
        // The relay's deletes of what JetStream acked need not wait for the WAL's flush (nor a
        // synchronous standby): one lost in a crash only relays its event again, which
        // JetStream drops as a duplicate (same Nats-Msg-Id) or consumers as an old sequence.
        // Waiting, the relay and every event behind it waited out each slow flush (165-220 ms
        // now and then on this machine's disk: docs/performance-history.md, change 44).
        pqxx::nontransaction(*conn).exec0("SET synchronous_commit = off");
      }
      if (!leader_) {
        pqxx::nontransaction txn(*conn);
        leader_ =
            txn.exec_params("SELECT pg_try_advisory_lock($1)", kRelayLockKey)[0][0].as<bool>();
        if (leader_) log::Info("outbox relay: leading");
      }
      if (leader_ && !stream_ready_) {
        absl::Status ensured = nats_->EnsureStream("MCI_EVENTS", {"mci.v1.events.>"});
        stream_ready_ = ensured.ok();
        if (!ensured.ok()) {
          log::Warn("outbox relay: stream not ready", {{"error", ensured.ToString()}});
          batch.failed = true;
        }
      }
      if (leader_ && stream_ready_) batch = RelayBatch(*conn);
    } catch (const std::exception& e) {
      log::Warn("outbox relay: database error; reconnecting", {{"error", e.what()}});
      conn.reset();
      leader_ = false;
      batch.failed = true;
    }
    if (stopping_ && batch.relayed == 0 && !batch.failed) break;  // flushed
    if (batch.relayed >= kBatchSize && !batch.failed) continue;   // a backlog: drain it
    if (batch.relayed > 0 && !batch.failed) {
      // Writes are coming in: let a few more commits gather for the next batch, while JetStream
      // acks the batch just sent (RelayBatch awaits its acks only then). Without this, under a
      // steady load each event costs a batch read, an empty read and a delete of its own; an
      // idle system's first event still goes out at once (woken by its commit).
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, kLinger, [&] { return stopping_.load(); });
      continue;
    }
    // Nothing to do, or a failure: wait for a local commit, or poll (other replicas' commits,
    // retries after an outage).
    std::unique_lock<std::mutex> lock(mu_);
    if (batch.failed) {
      cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_.load(); });
    } else {
      cv_.wait_for(lock, std::chrono::milliseconds(100),
                   [&] { return pending_ || stopping_.load(); });
    }
    pending_ = false;
  }
  leader_ = false;
}

}  // namespace mci::catalog
