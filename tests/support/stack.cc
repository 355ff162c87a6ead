#include "tests/support/stack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <google/protobuf/unknown_field_set.h>
#include <grp.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace mci::testing {
namespace {

namespace fs = std::filesystem;

// An idle gRPC client only notices connection events (a finished connect, a server's GOAWAY)
// when its backup poller runs, every 5 s by default: tests would wait 5 s for a restarted server
// and servers 5 s for the test to acknowledge their shutdown. Poll every 100 ms in the test
// process; children get the environment without it (see ChildEnvironment).
constexpr char kBackupPollVar[] = "GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS";
constexpr char kDurableVar[] = "MCI_TEST_PG_DURABLE";
// More PostgreSQL settings, ';'-separated, for looking into a run (e.g.
// "log_min_duration_statement=15;log_checkpoints=on"): the server's log is in the kept test dir.
constexpr char kExtraSettingsVar[] = "MCI_TEST_PG_SETTINGS";
const bool kBackupPollSetHere = [] {
  if (std::getenv(kBackupPollVar) != nullptr) return false;
  setenv(kBackupPollVar, "100", 0);
  return true;
}();

std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  const std::string skip = absl::StrCat(kBackupPollVar, "=");
  for (char** e = environ; *e != nullptr; ++e) {
    if (kBackupPollSetHere && std::strncmp(*e, skip.c_str(), skip.size()) == 0) continue;
    env.emplace_back(*e);
  }
  return env;
}

[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "\n[mci test harness] FATAL: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

void Pause(absl::Duration d) { std::this_thread::sleep_for(absl::ToChronoNanoseconds(d)); }

// The last `lines` lines of a file.
std::string Tail(const std::string& path, size_t lines = 60) {
  std::ifstream in(path);
  if (!in) return absl::StrCat("(no log at ", path, ")\n");
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) absl::StrAppend(&out, l, "\n");
  return out;
}

std::string FormatTail(const std::string& title, const std::string& path) {
  return absl::StrCat("----- last lines of ", title, " (", path, ") -----\n", Tail(path),
                      "----- end of ", title, " -----\n");
}

bool CurrentTestFailed() {
  if (::testing::Test::HasFailure()) return true;
  const auto* suite = ::testing::UnitTest::GetInstance()->current_test_suite();
  return suite != nullptr && suite->Failed();
}

void RemoveTempDirAtExit() {
  const std::string& dir = TempDir();
  if (std::getenv("MCI_KEEP_TEST_DIR") != nullptr) return;
  if (::testing::UnitTest::GetInstance()->Failed()) {
    std::fprintf(stderr, "[mci test harness] logs kept in %s\n", dir.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = absl::StrCat(TempDir(), "/", prefix, "XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    Fatal(absl::StrCat("mkdtemp ", tmpl, ": ", std::strerror(errno)));
  }
  return tmpl;
}

// A fresh log path in the temp dir: <name>.log, or <name>-2.log, ... when taken.
std::string UniqueLogPath(const std::string& name) {
  std::string path = absl::StrCat(TempDir(), "/", name, ".log");
  for (int i = 2; fs::exists(path); ++i) path = absl::StrCat(TempDir(), "/", name, "-", i, ".log");
  return path;
}

std::string FindProgram(const std::string& name, const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    std::string p = absl::StrCat(d, "/", name);
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  if (const char* path = std::getenv("PATH")) {
    std::string all = path;
    size_t start = 0;
    while (start <= all.size()) {
      size_t end = all.find(':', start);
      if (end == std::string::npos) end = all.size();
      std::string p = absl::StrCat(all.substr(start, end - start), "/", name);
      if (access(p.c_str(), X_OK) == 0) return p;
      start = end + 1;
    }
  }
  return name;
}

std::string PgBin(const std::string& program) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("MCI_PG_BIN")) dirs.emplace_back(env);
  dirs.emplace_back("/usr/lib/postgresql/15/bin");
  return FindProgram(program, dirs);
}

struct SpawnOptions {
  std::string log_path;        // stdout and stderr (appended)
  bool as_postgres = false;    // drop to the postgres user when running as root
  int death_signal = SIGKILL;  // sent to the child when this process dies
};

// fork + exec. Everything the child needs is prepared before fork (the parent has threads).
pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> env = ChildEnvironment();
  std::vector<char*> cenv;
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  int log_fd = open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) Fatal(absl::StrCat("open ", options.log_path, ": ", std::strerror(errno)));
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  bool drop = options.as_postgres && geteuid() == 0;
  uid_t uid = 0;
  gid_t gid = 0;
  if (drop) {
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) Fatal("running as root but there is no postgres user to run PostgreSQL as");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  std::string header = absl::StrCat("=== [", absl::FormatTime(absl::Now()), "] exec");
  for (const auto& a : argv) absl::StrAppend(&header, " ", a);
  header += "\n";
  if (write(log_fd, header.data(), header.size()) < 0) {
    // Best effort.
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) Fatal(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (drop && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
      static const char msg[] = "cannot switch to the postgres user\n";
      (void)!write(2, msg, sizeof(msg) - 1);
      _exit(126);
    }
    // After the credential change, which clears it.
    prctl(PR_SET_PDEATHSIG, options.death_signal);
    if (getppid() != parent) _exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execve(cargv[0], cargv.data(), cenv.data());
    static const char msg[] = "exec failed: ";
    (void)!write(2, msg, sizeof(msg) - 1);
    const char* err = std::strerror(errno);
    (void)!write(2, err, std::strlen(err));
    (void)!write(2, " (", 2);
    (void)!write(2, cargv[0], std::strlen(cargv[0]));
    (void)!write(2, ")\n", 2);
    _exit(127);
  }
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  return pid;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("status ", status);
}

// Reaps `pid` if it has exited; true when it has (its wait status in *status).
bool Reaped(pid_t pid, int* status) {
  int st = 0;
  pid_t r = waitpid(pid, &st, WNOHANG);
  if (r == pid || (r < 0 && errno == ECHILD)) {
    if (status != nullptr) *status = st;
    return true;
  }
  return false;
}

bool WaitExit(pid_t pid, absl::Duration timeout, int* status = nullptr) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (Reaped(pid, status)) return true;
    if (absl::Now() >= deadline) return false;
    Pause(absl::Milliseconds(20));
  }
}

// Sends `sig`, waits up to `timeout`, then SIGKILL.
void StopProcess(pid_t pid, int sig, absl::Duration timeout) {
  if (pid <= 0) return;
  kill(pid, sig);
  if (WaitExit(pid, timeout)) return;
  std::fprintf(stderr, "[mci test harness] pid %d ignored signal %d for %s; killing it\n", pid, sig,
               absl::FormatDuration(timeout).c_str());
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
}

int RunAndWait(const std::vector<std::string>& argv, const SpawnOptions& options,
               absl::Duration timeout) {
  pid_t pid = Spawn(argv, options);
  int status = 0;
  if (!WaitExit(pid, timeout, &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// Health checks reuse one channel per address.
std::shared_ptr<grpc::Channel> CachedChannel(const std::string& address) {
  static auto* mu = new std::mutex;
  static auto* channels = new std::map<std::string, std::shared_ptr<grpc::Channel>>;
  std::lock_guard<std::mutex> lock(*mu);
  auto& c = (*channels)[address];
  if (c == nullptr) c = MakeChannel(address);
  return c;
}

// TCP connect to 127.0.0.1:port and read the first bytes the server sends (NATS: INFO {...}).
std::string Greeting(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    // INFO is one line; read until the newline or the timeout.
    while (out.find('\n') == std::string::npos && out.size() < 65536) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

// grpc.health.v1.Health/Check.
absl::StatusOr<int> Check(const std::string& address, const std::string& service,
                          bool wait_for_ready, absl::Duration deadline);

}  // namespace

const std::string& TempDir() {
  static const std::string* dir = [] {
    std::string tmpl = absl::StrCat("/tmp/mci-test-", program_invocation_short_name, "-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) {
      Fatal(absl::StrCat("mkdtemp ", tmpl, ": ", std::strerror(errno)));
    }
    // The postgres user must be able to reach its data directory inside.
    chmod(tmpl.c_str(), 0755);
    auto* d = new std::string(tmpl);
    std::atexit(RemoveTempDirAtExit);
    return d;
  }();
  return *dir;
}

int FreePort() {
  static std::mutex mu;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mu);
  const std::string lock_dir = "/tmp/mci-test-ports";
  if (mkdir(lock_dir.c_str(), 01777) == 0) chmod(lock_dir.c_str(), 01777);
  for (int attempt = 0; attempt < 500; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Fatal(absl::StrCat("socket: ", std::strerror(errno)));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close(fd);
      continue;
    }
    close(fd);
    int port = ntohs(addr.sin_port);
    if (given.count(port) > 0) continue;
    // Claim the port machine-wide for this process's lifetime (the lock dies with the process).
    std::string path = absl::StrCat(lock_dir, "/", port);
    int lock_fd = open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
    if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      close(lock_fd);
      continue;  // another test binary holds it
    }
    given.insert(port);
    return port;  // lock_fd stays open on purpose
  }
  Fatal("no free port on 127.0.0.1");
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// ---------------------------------------------------------------------------------------------
// TestPostgres

namespace {

bool IsCluster(const std::string& dir) {
  return access((dir + "/PG_VERSION").c_str(), F_OK) == 0 &&
         access((dir + "/global/pg_control").c_str(), F_OK) == 0;
}

// initdb takes seconds, copying its output a tenth of one: one pristine (never started) cluster
// per machine and PostgreSQL build, /tmp/mci-test-pg-<uid>-<initdb size>-<mtime>, made once
// under a lock and shared by every test binary. Empty when it cannot be made.
std::string PristineCluster(const std::string& log_path) {
  struct stat st {};
  if (stat(PgBin("initdb").c_str(), &st) != 0) return "";
  const std::string dir = absl::StrCat("/tmp/mci-test-pg-v1-", geteuid(), "-", st.st_size, "-",
                                       static_cast<int64_t>(st.st_mtime));
  if (IsCluster(dir)) return dir;
  int lock = open((dir + ".lock").c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
  if (lock < 0) return "";
  flock(lock, LOCK_EX);
  std::string result;
  if (IsCluster(dir)) {
    result = dir;
  } else {
    std::error_code ec;
    fs::remove_all(dir, ec);  // a damaged one
    const std::string tmp = absl::StrCat(dir, ".tmp-", getpid());
    fs::remove_all(tmp, ec);
    bool ok = mkdir(tmp.c_str(), 0700) == 0;
    if (ok && geteuid() == 0) {
      struct passwd* pw = getpwnam("postgres");
      ok = pw != nullptr && chown(tmp.c_str(), pw->pw_uid, pw->pw_gid) == 0;
    }
    ok = ok && RunAndWait({PgBin("initdb"), "-D", tmp, "-A", "trust", "-U", "postgres", "-E",
                           "UTF8", "--locale=C", "-N"},
                          SpawnOptions{log_path, /*as_postgres=*/true}, absl::Seconds(120)) == 0;
    if (ok && rename(tmp.c_str(), dir.c_str()) == 0) {
      result = dir;
    } else {
      fs::remove_all(tmp, ec);
    }
  }
  flock(lock, LOCK_UN);
  close(lock);
  return result;
}

}  // namespace

TestPostgres::TestPostgres() {
  dir_ = MakeTempDir("pg-");
  port_ = FreePort();
  log_path_ = UniqueLogPath(absl::StrCat("postgres-", port_));
  if (geteuid() == 0) {
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) Fatal("running as root but there is no postgres user to run PostgreSQL as");
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      Fatal(absl::StrCat("chown ", dir_, ": ", std::strerror(errno)));
    }
  }
  chmod(dir_.c_str(), 0700);
  SpawnOptions options{log_path_, /*as_postgres=*/true};
  // A copy of the shared pristine cluster; initdb itself only when that fails.
  std::string pristine = PristineCluster(log_path_);
  if (pristine.empty() ||
      RunAndWait({FindProgram("cp", {"/bin", "/usr/bin"}), "-a", pristine, dir_ + "/data"}, options,
                 absl::Seconds(60)) != 0) {
    std::error_code ec;
    fs::remove_all(dir_ + "/data", ec);
    int rc = RunAndWait({PgBin("initdb"), "-D", dir_ + "/data", "-A", "trust", "-U", "postgres",
                         "-E", "UTF8", "--locale=C", "-N"},
                        options, absl::Seconds(120));
    if (rc != 0) {
      Fatal(absl::StrCat("initdb failed (", rc, ")\n", FormatTail("initdb", log_path_)));
    }
  }
  Start();
}

TestPostgres::~TestPostgres() {
  Stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string TestPostgres::Url(const std::string& database) const {
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", database);
}

std::string TestPostgres::CreateDatabase(const std::string& name) {
  try {
    pqxx::connection conn(Url("postgres"));
    pqxx::nontransaction tx(conn);
    if (tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", name).empty()) {
      tx.exec0("CREATE DATABASE " + tx.quote_name(name));
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "Cannot create database " << name << ": " << e.what();
  }
  return Url(name);
}

void TestPostgres::Start() {
  if (running_) return;
  SpawnOptions options{log_path_, /*as_postgres=*/true, /*death_signal=*/SIGQUIT};
  std::vector<std::string> settings = {"listen_addresses=127.0.0.1",
                                       "unix_socket_directories=" + dir_, "max_connections=200"};
  // Tests run without durability, for speed; MCI_TEST_PG_DURABLE keeps PostgreSQL's defaults
  // (the benchmark's). Command-line settings outrank ALTER SYSTEM, so this is the only switch.
  if (std::getenv(kDurableVar) == nullptr) {
    settings.insert(settings.end(),
                    {"fsync=off", "synchronous_commit=off", "full_page_writes=off"});
  }
  if (const char* extra = std::getenv(kExtraSettingsVar)) {
    for (absl::string_view setting : absl::StrSplit(extra, ';', absl::SkipEmpty())) {
      settings.emplace_back(setting);
    }
  }
  std::vector<std::string> argv = {PgBin("postgres"), "-D", dir_ + "/data", "-p",
                                   std::to_string(port_)};
  for (const auto& setting : settings) argv.insert(argv.end(), {"-c", setting});
  pid_ = Spawn(argv, options);
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string last_error;
  while (true) {
    int status = 0;
    if (Reaped(pid_, &status)) {
      pid_ = -1;
      Fatal(absl::StrCat("postgres exited (", DescribeExit(status), ")\n",
                         FormatTail("postgres", log_path_)));
    }
    try {
      pqxx::connection conn(Url("postgres"));
      break;
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    if (absl::Now() > deadline) {
      Fatal(absl::StrCat("postgres does not accept connections on port ", port_, ": ", last_error,
                         "\n", FormatTail("postgres", log_path_)));
    }
    Pause(absl::Milliseconds(50));
  }
  running_ = true;
}

void TestPostgres::Stop() {
  if (!running_) return;
  running_ = false;
  SpawnOptions options{log_path_, /*as_postgres=*/true};
  int rc =
      RunAndWait({PgBin("pg_ctl"), "stop", "-D", dir_ + "/data", "-m", "fast", "-w", "-t", "30"},
                 options, absl::Seconds(40));
  if (rc != 0) {
    std::fprintf(stderr, "[mci test harness] pg_ctl stop failed (%d); signalling postgres\n", rc);
  }
  // The postmaster is our child: reap it (SIGINT is PostgreSQL's fast shutdown).
  StopProcess(pid_, SIGINT, absl::Seconds(rc == 0 ? 10 : 30));
  pid_ = -1;
}

// ---------------------------------------------------------------------------------------------
// TestNats

TestNats::TestNats() {
  dir_ = MakeTempDir("nats-");
  port_ = FreePort();
  log_path_ = UniqueLogPath(absl::StrCat("nats-", port_));
  Start();
}

TestNats::~TestNats() {
  Stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string TestNats::Url() const { return absl::StrCat("nats://127.0.0.1:", port_); }

void TestNats::Start() {
  if (pid_ > 0) return;
  pid_ = Spawn({FindProgram("nats-server", {"/usr/sbin", "/usr/bin", "/usr/local/bin"}), "-js",
                "-sd", dir_, "-p", std::to_string(port_), "-a", "127.0.0.1"},
               SpawnOptions{log_path_});
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    int status = 0;
    if (Reaped(pid_, &status)) {
      pid_ = -1;
      Fatal(absl::StrCat("nats-server exited (", DescribeExit(status), ")\n",
                         FormatTail("nats-server", log_path_)));
    }
    std::string info = Greeting(port_);
    if (info.rfind("INFO", 0) == 0 && info.find("\"jetstream\":true") != std::string::npos) break;
    if (absl::Now() > deadline) {
      Fatal(absl::StrCat("nats-server with JetStream not reachable on port ", port_, "\n",
                         FormatTail("nats-server", log_path_)));
    }
    Pause(absl::Milliseconds(50));
  }
}

void TestNats::Freeze() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void TestNats::Thaw() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

void TestNats::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);  // a frozen server would not act on the SIGTERM
  StopProcess(pid_, SIGTERM, absl::Seconds(10));
  pid_ = -1;
}

// ---------------------------------------------------------------------------------------------
// ServiceProcess

ServiceProcess::ServiceProcess(std::string name, std::string binary, std::vector<std::string> args)
    : name_(std::move(name)), binary_(std::move(binary)), args_(std::move(args)) {
  log_path_ = UniqueLogPath(name_);
  Launch();
}

ServiceProcess::~ServiceProcess() {
  Terminate();
  if (CurrentTestFailed()) std::cerr << FormatTail(name_ + " log", log_path_);
}

void ServiceProcess::Launch() {
  if (pid_ > 0) return;
  std::vector<std::string> argv = {binary_};
  argv.insert(argv.end(), args_.begin(), args_.end());
  pid_ = Spawn(argv, SpawnOptions{log_path_});
}

absl::Status ServiceProcess::WaitServing(const std::string& address, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::UnavailableError("not checked yet");
  while (true) {
    int status = 0;
    if (pid_ <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, " is not running.\n", FormatTail(name_ + " log", log_path_)));
    }
    if (Reaped(pid_, &status)) {
      pid_ = -1;
      return absl::FailedPreconditionError(absl::StrCat(name_, " (", binary_, ") exited with ",
                                                        DescribeExit(status), " before serving.\n",
                                                        FormatTail(name_ + " log", log_path_)));
    }
    // wait_for_ready: the call itself drives the (re)connection while the server starts.
    // A ServiceHost registers "liveness" last at start-up: once it answers, so does every other
    // name. A server without it (the bench's echo server) is judged by "" alone.
    auto health = Check(address, "liveness", /*wait_for_ready=*/true, absl::Milliseconds(500));
    if ((health.ok() && *health == 1) || health.status().code() == absl::StatusCode::kNotFound) {
      health = Check(address, "", /*wait_for_ready=*/false, absl::Milliseconds(500));
    }
    if (health.ok() && *health == 1) return absl::OkStatus();
    last = health.ok() ? absl::UnavailableError(absl::StrCat("health status ", *health))
                       : health.status();
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(name_, " not SERVING on ", address, " after ", absl::FormatDuration(timeout),
                       " (last: ", last.ToString(), ").\n", FormatTail(name_ + " log", log_path_)));
    }
    Pause(absl::Milliseconds(100));
  }
}

void ServiceProcess::Terminate() {
  if (pid_ <= 0) return;
  // Services drain in-flight calls for up to 10 s on SIGTERM.
  StopProcess(pid_, SIGTERM, absl::Seconds(20));
  pid_ = -1;
}

void ServiceProcess::Kill() {
  if (pid_ <= 0) return;
  StopProcess(pid_, SIGKILL, absl::Seconds(10));
  pid_ = -1;
}

void ServiceProcess::Restart() {
  Terminate();
  Launch();
}

// ---------------------------------------------------------------------------------------------
// Calls

bool Eventually(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    Pause(absl::Milliseconds(100));
  }
  return condition();
}

int64_t MetricsCounter(const std::string& http_address, const std::string& name) {
  return static_cast<int64_t>(MetricsValue(http_address, name));
}

namespace {

// The sample of `series` in the /metrics at `http_address`: -1 when unreadable, nullopt when
// absent.
std::optional<double> MetricsSample(const std::string& http_address, const std::string& series) {
  httplib::Client http("http://" + http_address);
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) return -1;
  for (absl::string_view line : absl::StrSplit(res->body, '\n')) {
    double value = 0;
    if (absl::ConsumePrefix(&line, series + " ") && absl::SimpleAtod(line, &value)) return value;
  }
  return std::nullopt;
}

}  // namespace

double MetricsValue(const std::string& http_address, const std::string& series) {
  return MetricsSample(http_address, series).value_or(0);
}

bool MetricsHas(const std::string& http_address, const std::string& series) {
  const std::optional<double> sample = MetricsSample(http_address, series);
  return sample.has_value() && *sample >= 0;
}

std::string Token(const std::string& account, const std::vector<auth::Role>& roles,
                  absl::Duration ttl, const std::string& secret) {
  auth::Claims claims;
  claims.subject = account.empty() ? "test" : "user@" + account;
  claims.account = account;
  claims.roles = roles;
  claims.expires = absl::Now() + ttl;
  return auth::SignToken(secret, claims);
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

namespace {

absl::StatusOr<int> Check(const std::string& address, const std::string& service,
                          bool wait_for_ready, absl::Duration deadline) {
  auto stub = grpc::health::v1::Health::NewStub(CachedChannel(address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  context.set_wait_for_ready(wait_for_ready);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return FromGrpc(status);
  return static_cast<int>(response.status());
}

}  // namespace

absl::StatusOr<int> HealthCheck(const std::string& address, const std::string& service) {
  return Check(address, service, /*wait_for_ready=*/false, absl::Seconds(2));
}

absl::StatusOr<std::vector<std::string>> ListServices(const std::string& address) {
  // grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo driven through the generic stub
  // (Debian ships no client for it), messages encoded by hand:
  //   ServerReflectionRequest { string list_services = 7; }
  //   ServerReflectionResponse { ListServiceResponse list_services_response = 6;
  //                              ErrorResponse error_response = 7; }
  //   ListServiceResponse { repeated ServiceResponse service = 1; }  ServiceResponse { name = 1; }
  grpc::GenericStub stub(CachedChannel(address));
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto await = [&cq]() {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  };
  int tag = 0;
  const std::string request("\x3a\x01*", 3);
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  grpc::ByteBuffer in;
  bool got = false;
  call->StartCall(&tag);
  if (await()) {
    call->Write(out, &tag);
    if (await()) {
      call->WritesDone(&tag);
      await();
      call->Read(&in, &tag);
      got = await();
    }
  }
  grpc::Status status;
  call->Finish(&status, &tag);
  await();
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  if (!status.ok()) return FromGrpc(status);
  if (!got) return absl::UnavailableError("The reflection service sent no response.");
  std::vector<grpc::Slice> slices;
  if (!in.Dump(&slices).ok()) return absl::InternalError("Cannot read the reflection response.");
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  google::protobuf::UnknownFieldSet response;
  if (!response.ParseFromString(bytes)) {
    return absl::InternalError("The reflection response does not parse.");
  }
  std::vector<std::string> names;
  for (int i = 0; i < response.field_count(); ++i) {
    const auto& field = response.field(i);
    if (field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    google::protobuf::UnknownFieldSet inner;
    if (!inner.ParseFromString(field.length_delimited())) continue;
    if (field.number() == 7) {
      std::string message;
      for (int j = 0; j < inner.field_count(); ++j) {
        if (inner.field(j).number() == 2 &&
            inner.field(j).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
          message = inner.field(j).length_delimited();
        }
      }
      return absl::UnknownError(absl::StrCat("Reflection error: ", message));
    }
    if (field.number() != 6) continue;
    for (int j = 0; j < inner.field_count(); ++j) {
      const auto& service = inner.field(j);
      if (service.number() != 1 ||
          service.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
        continue;
      }
      google::protobuf::UnknownFieldSet fields;
      if (!fields.ParseFromString(service.length_delimited())) continue;
      for (int k = 0; k < fields.field_count(); ++k) {
        if (fields.field(k).number() == 1 &&
            fields.field(k).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
          names.push_back(fields.field(k).length_delimited());
        }
      }
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Stack

Stack::Stack(Options options) {
  postgres_ = std::make_unique<TestPostgres>();
  const std::string catalog_db = postgres_->CreateDatabase("catalog");
  const std::string templates_db = postgres_->CreateDatabase("templates");
  const std::string marketplace_db = postgres_->CreateDatabase("marketplace");
  nats_ = std::make_unique<TestNats>();

  // Every port up front, so that peers can point at each other.
  auto address = [] { return absl::StrCat("127.0.0.1:", FreePort()); };
  const std::string catalog_grpc = address(), catalog_http = address();
  const std::string templates_grpc = address(), templates_http = address();
  const std::string marketplace_grpc = address(), marketplace_http = address();
  auto common = [&](const std::string& grpc, const std::string& http, const std::string& db) {
    return std::vector<std::string>{"--grpc-address=" + grpc, "--http-address=" + http,
                                    "--database-url=" + db, "--nats-url=" + nats_->Url(),
                                    std::string("--jwt-secret=") + kTestSecret};
  };
  if (options.catalog) {
    auto args = common(catalog_grpc, catalog_http, catalog_db);
    args.push_back("--templates-address=" + templates_grpc);
    args.push_back(std::string("--inventory-file=") + MCI_SOURCE_DIR "/deploy/inventory.json");
    args.insert(args.end(), options.catalog_flags.begin(), options.catalog_flags.end());
    catalog_ = std::make_unique<ServiceProcess>(
        "catalog", MCI_BIN_DIR "/services/catalog/catalog-service", args);
    catalog_address_ = catalog_grpc;
    catalog_http_address_ = catalog_http;
  }
  if (options.templates) {
    auto args = common(templates_grpc, templates_http, templates_db);
    args.push_back("--catalog-address=" + catalog_grpc);
    args.insert(args.end(), options.templates_flags.begin(), options.templates_flags.end());
    templates_ = std::make_unique<ServiceProcess>(
        "templates", MCI_BIN_DIR "/services/templates/template-reference-service", args);
    templates_address_ = templates_grpc;
    templates_http_address_ = templates_http;
  }
  if (options.marketplace) {
    auto args = common(marketplace_grpc, marketplace_http, marketplace_db);
    args.push_back("--catalog-address=" + catalog_grpc);
    args.push_back("--templates-address=" + templates_grpc);
    args.insert(args.end(), options.marketplace_flags.begin(), options.marketplace_flags.end());
    marketplace_ = std::make_unique<ServiceProcess>(
        "marketplace", MCI_BIN_DIR "/services/marketplace/marketplace-service", args);
    marketplace_address_ = marketplace_grpc;
    marketplace_http_address_ = marketplace_http;
  }
  for (auto [process, addr] : {std::pair{catalog_.get(), catalog_address_},
                               std::pair{templates_.get(), templates_address_},
                               std::pair{marketplace_.get(), marketplace_address_}}) {
    if (process == nullptr) continue;
    absl::Status s = process->WaitServing(addr, absl::Seconds(30));
    if (!s.ok() && status_.ok()) status_ = s;
  }
  if (!status_.ok()) ADD_FAILURE() << "The test stack did not start: " << status_.message();
}

Stack::~Stack() {
  {
    std::lock_guard<std::mutex> lock(channels_mu_);
    channels_.clear();
  }
  // Dependents first: services, then NATS, then PostgreSQL.
  marketplace_.reset();
  templates_.reset();
  catalog_.reset();
  nats_.reset();
  postgres_.reset();
}

std::shared_ptr<grpc::Channel> Stack::Channel(const std::string& address) {
  std::lock_guard<std::mutex> lock(channels_mu_);
  auto& c = channels_[address];
  if (c == nullptr) c = MakeChannel(address);
  return c;
}

}  // namespace mci::testing
