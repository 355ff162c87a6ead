#pragma once

// Test harness: real PostgreSQL and NATS servers on free loopback ports, and the service binaries
// as child processes. Integration tests start what they need and the destructors stop it.

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/common/auth.h"

namespace mci::testing {

// The JWT secret every test service is started with.
inline constexpr char kTestSecret[] = "test-secret-0123456789";

// A free TCP port on 127.0.0.1 (bound to port 0, then released). A port is handed out once per
// machine while this process lives (lock files under /tmp/mci-test-ports), so parallel test
// binaries do not collide.
int FreePort();

// The per-test-binary temporary directory (/tmp/mci-test-XXXXXX, created on first use) holding
// logs and data. Removed at exit when every test passed, unless MCI_KEEP_TEST_DIR is set.
const std::string& TempDir();

// A throwaway PostgreSQL 15 cluster in a fresh temporary directory owned by the postgres user
// (PostgreSQL refuses to run as root), listening on 127.0.0.1:<free port>.
class TestPostgres {
 public:
  TestPostgres();   // initdb + start; aborts the test binary with a message on failure
  ~TestPostgres();  // stop + remove the directory
  // Creates a database (idempotent) and returns its URL: postgresql://postgres@127.0.0.1:PORT/NAME
  std::string CreateDatabase(const std::string& name);
  std::string Url(const std::string& database) const;
  int port() const { return port_; }
  // pg_ctl stop -m fast / start on the same directory and port (for outage tests).
  void Stop();
  void Start();
  bool running() const { return running_; }
  std::string log_path() const { return log_path_; }

 private:
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  pid_t pid_ = -1;
  std::string log_path_;
};

// nats-server -js on 127.0.0.1:<free port> with its store in a temporary directory.
class TestNats {
 public:
  TestNats();
  ~TestNats();
  std::string Url() const;  // nats://127.0.0.1:PORT
  int port() const { return port_; }
  void Stop();   // SIGTERM and wait
  void Start();  // same port and store directory
  // SIGSTOP and SIGCONT: a server that keeps its connections open but answers nothing meanwhile
  // (what a client sees of a server stalled, or of a network that drops its packets).
  void Freeze();
  void Thaw();
  bool running() const { return pid_ > 0; }

 private:
  std::string dir_;
  std::string log_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A service binary run as a child process with the given flags. Its stderr goes to
// <tmp>/<name>.log (printed by the destructor when the test failed).
class ServiceProcess {
 public:
  // binary: e.g. MCI_BIN_DIR "/services/catalog/catalog-service"
  ServiceProcess(std::string name, std::string binary, std::vector<std::string> args);
  ~ServiceProcess();
  // Waits until grpc.health.v1.Health/Check answers SERVING on the given address.
  absl::Status WaitServing(const std::string& address, absl::Duration timeout);
  void Terminate();  // SIGTERM and wait
  void Kill();       // SIGKILL and wait
  void Restart();    // start again with the same args
  bool running() const { return pid_ > 0; }
  std::string log_path() const { return log_path_; }

 private:
  void Launch();
  std::string name_;
  std::string binary_;
  std::vector<std::string> args_;
  std::string log_path_;
  pid_t pid_ = -1;
};

// Polls `condition` every 100 ms until it holds or `timeout` passes; returns its last value.
bool Eventually(const std::function<bool()>& condition, absl::Duration timeout);

// The value of counter `name` in the /metrics of the service whose HTTP endpoint is
// `http_address` (0 when absent, -1 when unreadable).
int64_t MetricsCounter(const std::string& http_address, const std::string& name);
// The value of `series` (a name with its labels, e.g. `x_bucket{le="0.5"}`) in that /metrics,
// likewise 0 when absent and -1 when unreadable.
double MetricsValue(const std::string& http_address, const std::string& series);
// Whether /metrics has a sample of `series` at all (MetricsValue reads an absent one as 0).
bool MetricsHas(const std::string& http_address, const std::string& series);

// The grpc.reflection.v1alpha service list (ListServices) of the server at `address`.
absl::StatusOr<std::vector<std::string>> ListServices(const std::string& address);

// A signed token for tests (HS256 with kTestSecret unless another secret is given).
std::string Token(const std::string& account, const std::vector<auth::Role>& roles,
                  absl::Duration ttl = absl::Hours(1), const std::string& secret = kTestSecret);

// A ClientContext carrying `authorization: Bearer <token>` (none when token is empty) and a 10 s
// deadline.
std::unique_ptr<grpc::ClientContext> Context(const std::string& token);

// grpc.health.v1.Health/Check for the given service name ("" = whole server); returns the
// serving status enum value (1 = SERVING, 2 = NOT_SERVING) or an error.
absl::StatusOr<int> HealthCheck(const std::string& address, const std::string& service);

// The whole stack for cross-service tests: PostgreSQL with one database per service, NATS, and
// whichever services are asked for, on free ports.
class Stack {
 public:
  struct Options {
    bool catalog = true;
    bool templates = false;
    bool marketplace = false;
    // Extra flags appended to each service's command line (a later flag wins).
    std::vector<std::string> catalog_flags;
    std::vector<std::string> templates_flags;
    std::vector<std::string> marketplace_flags;
  };
  explicit Stack(Options options);
  ~Stack();
  TestPostgres& postgres() { return *postgres_; }
  TestNats& nats() { return *nats_; }
  // 127.0.0.1:PORT of each service (empty when not started).
  std::string catalog_address() const { return catalog_address_; }
  std::string templates_address() const { return templates_address_; }
  std::string marketplace_address() const { return marketplace_address_; }
  // 127.0.0.1:PORT of each service's HTTP endpoint (/healthz, /readyz, /metrics).
  std::string catalog_http_address() const { return catalog_http_address_; }
  std::string templates_http_address() const { return templates_http_address_; }
  std::string marketplace_http_address() const { return marketplace_http_address_; }
  // OK when every requested service answered SERVING within 30 s (the constructor also records a
  // test failure otherwise). Start tests with ASSERT_TRUE(stack.status().ok()) << stack.status();
  const absl::Status& status() const { return status_; }
  ServiceProcess* catalog() { return catalog_.get(); }
  ServiceProcess* templates() { return templates_.get(); }
  ServiceProcess* marketplace() { return marketplace_.get(); }
  // A cached insecure channel (fast reconnect backoff, for restart tests).
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);

 private:
  std::unique_ptr<TestPostgres> postgres_;
  std::unique_ptr<TestNats> nats_;
  std::unique_ptr<ServiceProcess> catalog_, templates_, marketplace_;
  std::string catalog_address_, templates_address_, marketplace_address_;
  std::string catalog_http_address_, templates_http_address_, marketplace_http_address_;
  absl::Status status_;
  std::mutex channels_mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// An insecure channel with a short reconnect backoff (at most 1 s), so that a restarted server is
// reached again quickly.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

}  // namespace mci::testing
