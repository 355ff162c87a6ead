#pragma once

#include <nats/nats.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mci::nats {

// natsStatus as an absl::Status (connection problems are UNAVAILABLE).
absl::Status ToStatus(natsStatus s, absl::string_view what);

// How long a JetStream pull consumer lets further events gather after a fetch returned `fetched`
// messages of at most `batch`, before it fetches again: none after a full batch (a backlog), 5 ms
// otherwise. Under a steady write load a fetch would otherwise return an event or two, each batch
// a transaction with a flushed commit of its own; an idle stream's next event is still fetched as
// it arrives, the wait following a batch, not preceding one. (20 ms after a batch of several
// gave no measurable gain in the write rows, and doubled propagation's p99 under load.)
std::chrono::milliseconds GatherAfterFetch(int fetched, int batch);

// A NATS connection with a JetStream context. It connects in the background when the server is
// not up yet and reconnects forever, so a NATS outage only delays work.
class Client {
 public:
  // ca_file: PEM bundle to verify a tls:// server with (cnats does not read the system CAs).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& url,
                                                         const std::string& name,
                                                         const std::string& ca_file = "");
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const;
  // Creates the stream when missing (file storage, 2-minute duplicate window).
  absl::Status EnsureStream(const std::string& stream, const std::vector<std::string>& subjects);
  // Publishes and waits for the JetStream ack; msg_id de-duplicates retries.
  absl::Status Publish(const std::string& subject, const std::string& data,
                       const std::string& msg_id, absl::Duration timeout);
  // Core NATS (no JetStream, at most once): a plain publish, for cache announcements whose loss
  // only delays an expiry.
  absl::Status Announce(const std::string& subject, const std::string& data);
  // Core NATS subscription for the client's lifetime; `on_message(data)` runs on the client's
  // delivery thread and must not block. Survives reconnects.
  using Handler = std::function<void(absl::string_view data)>;
  absl::Status Subscribe(const std::string& subject, Handler on_message);
  // Ends every Subscribe: call before what the handlers use goes away.
  void Unsubscribe();
  natsConnection* connection() { return conn_; }
  jsCtx* jetstream() { return js_; }

 private:
  struct Subscription {
    Handler handler;
    natsSubscription* sub = nullptr;
  };
  Client() = default;
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  std::vector<std::unique_ptr<Subscription>> subscriptions_;
};

}  // namespace mci::nats
