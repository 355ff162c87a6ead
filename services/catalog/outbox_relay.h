#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "libs/common/nats.h"

namespace mci::catalog {

// Publishes the catalog's outbox to JetStream in id order (per-MCI order follows, since writes to
// one MCI hold its row lock), with Nats-Msg-Id = event id, deleting a row only after its ack.
// One relay at a time across replicas: the one holding a PostgreSQL advisory lock on its own
// connection. NATS or database outages only delay events; a restart resends at most the rows
// whose delete was not yet recorded (the last two batches': a batch's delete rides on the read
// after its acks, and its acks are awaited after the linger), which JetStream de-duplicates by
// message id.
class OutboxRelay {
 public:
  OutboxRelay(std::string database_url, nats::Client* nats);
  ~OutboxRelay();
  void Start();
  // Publishes what is pending (for a few seconds at most), then stops.
  void Stop();
  // A local transaction committed events: relay now rather than at the next poll.
  void Notify();
  bool leader() const { return leader_.load(); }

 private:
  void Loop();
  struct Batch {
    int relayed = 0;
    bool failed = false;  // a publish or the database failed: back off before retrying
  };
  // A batch read and published pipelined, whose acks are awaited only at the next batch: the
  // relay lingers meanwhile (see Loop), so the wait for the acks is not a step of its own.
  struct InFlight {
    pqxx::result rows;
    absl::Time started;  // the read's start
    absl::Time read;     // its end
  };
  // Completes the batch in flight (its acks, or else publishing it again one by one), then reads
  // the next (deleting the last ones acked) and publishes it.
  Batch RelayBatch(pqxx::connection& conn);
  // The rest of `batch` once sent: published one by one unless `all_acked` (when its last ack
  // came), its rows' ids kept for the next read's delete, its metrics and slow-batch log.
  Batch Finish(pqxx::connection& conn, const InFlight& batch, std::optional<absl::Time> all_acked);
  class Pipeline;

  std::string database_url_;
  nats::Client* nats_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> leader_{false};
  bool stream_ready_ = false;
  // Ids ("1,2,3") of rows published and acked, deleted with the next batch's read.
  std::string relayed_;
  std::unique_ptr<Pipeline> pipeline_;  // used by the relay's thread only
  std::optional<InFlight> in_flight_;   // likewise
};

}  // namespace mci::catalog
