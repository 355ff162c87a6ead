#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>

#include "libs/common/nats.h"

namespace mci::catalog {

// Publishes the catalog's outbox to JetStream in id order (per-MCI order follows, since writes to
// one MCI hold its row lock), with Nats-Msg-Id = event id, deleting a row only after its ack.
// One relay at a time across replicas: the one holding a PostgreSQL advisory lock on its own
// connection. NATS or database outages only delay events; a restart resends at most the rows
// whose delete was not yet recorded (the last batch's: its delete rides on the next read),
// which JetStream de-duplicates by message id.
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
  Batch RelayBatch(pqxx::connection& conn);
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
};

}  // namespace mci::catalog
