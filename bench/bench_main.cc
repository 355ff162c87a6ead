// mci-bench: starts PostgreSQL, NATS, the three services and the echo ceiling on free loopback
// ports, seeds a catalog, drives every scenario with the asynchronous gRPC clients of load.h and
// prints each result next to the baseline measured in this same run (echo for reads, pgbench for
// writes). See docs/performance.md. Configuration from the environment:
//   BENCH_SCALE      MCIs in the catalog (default 10000); above 10000 the read scenarios also
//                    run at 10000 first and the table compares both scales.
//   BENCH_TEMPLATES  ServerTemplates (default 1000)
//   BENCH_SECONDS    measured seconds per scenario (default 12), BENCH_WARMUP (default 1)
//   BENCH_SLICE      seconds per slice of the paired read and list rows (default 1: twelve
//                    rounds; the writes' slices are whole seconds), BENCH_SLICE_WARMUP the
//                    warm-up of each slice after the first (default 0.2)
//   BENCH_CHANNELS   client channels (default 4)
//   BENCH_CLIENT_THREADS  the client's completion-queue threads (default 2)
//   BENCH_LAUNCH_SET MCIs that ResolveImage and GetMultiCloudImage pick from (default 1000)
//   BENCH_PERF       comma-separated operation prefixes to profile with perf record (the
//                    services and PostgreSQL, into BENCH_RESULTS/perf-*.data)
//   BENCH_ONLY       comma-separated scenario prefixes to run (default all); "outside" runs the
//                    outside rows, "outside: ResolveLaunch" (say) one scenario's of them
//   BENCH_RESULTS    directory for the JSON (default bench/results)
//   BENCH_OUTSIDE_PERFSTAT  set: `perf stat` of the services in each outside row's slices, both
//                    clients', into BENCH_RESULTS/perfstat-*.txt; `switches`: `perf record` of
//                    their context switches instead, one perfstat-*.txt.<n>.data per slice;
//                    `cpu`: a `perf record` of their CPU (999 Hz) the same way (it slows the
//                    bench client's slices more than the outside client's: compare profiles
//                    per call, not the rates)
//   BENCH_OUTSIDE    the outside client (bench/outside/grpcload, which make bench builds): the
//                    "outside:" rows drive the same stack with it and compare with this client;
//                    BENCH_OUTSIDE_ARGS adds options to its command line
#include <grpcpp/grpcpp.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/load.h"
#include "bench/procstat.h"
#include "bench/rounds.h"
#include "bench/stall_probe.h"
#include "mci/bench/v1/echo.grpc.pb.h"
#include "mci/catalog/v1/catalog.grpc.pb.h"
#include "mci/events/v1/events.pb.h"
#include "mci/templates/v1/templates.grpc.pb.h"
#include "tests/support/stack.h"

namespace mci::bench {
namespace {

namespace cpb = ::mci::catalog::v1;
namespace tpb = ::mci::templates::v1;
namespace epb = ::mci::bench::v1;
using mci::testing::ServiceProcess;
using mci::testing::Stack;

constexpr char kAccount[] = "bench";
constexpr char kAgentTag[] = "provides:rs_agent_type=right_link";
// The read rows' methods, as on the wire.
constexpr char kResolveMethod[] = "/mci.catalog.v1.CatalogService/ResolveImage";
constexpr char kGetMethod[] = "/mci.catalog.v1.CatalogService/GetMultiCloudImage";
constexpr char kLaunchMethod[] = "/mci.templates.v1.ServerTemplateService/ResolveLaunch";
constexpr char kEchoMethod[] = "/mci.bench.v1.EchoService/Echo";
// The pgbench scripts' event payload, as their -D: about a base64 event's size.
std::string PgbenchPayload() { return "payload=" + std::string(320, 'A'); }

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}
double EnvDouble(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atof(v) : fallback;
}
std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string EnvString(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

void Log(const std::string& line) {
  std::fprintf(stderr, "[bench %s] %s\n",
               absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()).c_str(),
               line.c_str());
}

std::string MciName(const std::string& account, const std::string& id, int64_t revision = 0) {
  std::string n = absl::StrCat("accounts/", account, "/multiCloudImages/", id);
  if (revision > 0) absl::StrAppend(&n, "@", revision);
  return n;
}

// One row of the table.
struct Row {
  std::string op;
  std::string group;  // echo, read, list, write, event, memory
  int in_flight = 0;
  bool ran = false;
  std::string not_run;
  LoadResult r;
  double server_cpu_us = 0;  // service processes' CPU per operation
  double server_cores = 0;   // service processes' CPU per wall second
  double pg_cpu_us = 0;      // PostgreSQL's CPU per operation
  double client_cpu_us = 0;  // the client's CPU per operation (this process, or the outside one)
  std::string baseline;      // name of the baseline row
  double baseline_qps = 0, baseline_p99 = 0, baseline_p50 = 0;
  double ratio_qps = 0, ratio_p99 = 0;
  std::string target;
  std::string verdict;  // met / NOT met / -
  std::string note;
  // Outside rows: the bench client's QPS and the services' CPU per call, measured side by side.
  double peer_qps = 0, peer_cpu_us = 0, peer_client_cpu_us = 0;
  double floor = 0;  // outside rows: the scenario's target, as a ratio to echo
  // Paired rows: the row's QPS over its baseline's in each side-by-side slice pair (and, for
  // outside rows, the bench client's). The ratio reported is their median.
  std::vector<double> slice_ratios, peer_slice_ratios;
  std::vector<double> slice_p99_ratios;  // paired rows: p99 over the baseline's, per pair
  // Outside rows: per slice, the outside client's rate over the bench client's side by side (or
  // over the outside client's own echo rate, where that is lower); agreement is their median.
  std::vector<double> slice_rate_ratios;
  // Paired rows: the rates of each slice, the row's and its baseline's (one more: the baseline
  // closes the run); outside rows, the outside client's and its echo's.
  std::vector<double> slice_qps, baseline_slice_qps;
  // Paired rows: each scenario slice's baseline, the mean of the baseline slices around it.
  std::vector<double> slice_baseline_qps;
  // The share of the CPUs' time the hypervisor stole while the row measured (/proc/stat; -1: not
  // read). A row slower than the run before it with more steal ran on a busier host.
  double steal_share = -1;
  // Event rows: the machine's own stalls while it measured (bench/stall_probe.h).
  struct Stalls {
    bool measured = false, realtime = false;
    int count = 0;  // wake-ups of the 1 ms sleeper later than 5 ms
    double longest_ms = 0, total_ms = 0, watched_s = 0;
    int stalled_samples = 0;    // samples whose span overlapped one
    double p99_others_ms = -1;  // the other samples' p99 (-1: none)
  } stalls;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Calls(const Row& row) { return static_cast<double>(row.r.ok + row.r.errors); }

// Adds one slice of a scenario to the scenario's totals: calls and latencies merged, CPU per
// call weighted by calls, cores by seconds.
void AddSlice(Row* total, const Row& part, bool first) {
  if (first) {
    *total = part;
    return;
  }
  const double before = Calls(*total), more = Calls(part), seconds_before = total->r.seconds;
  if (before + more > 0) {
    total->server_cpu_us =
        (total->server_cpu_us * before + part.server_cpu_us * more) / (before + more);
    total->pg_cpu_us = (total->pg_cpu_us * before + part.pg_cpu_us * more) / (before + more);
    total->client_cpu_us =
        (total->client_cpu_us * before + part.client_cpu_us * more) / (before + more);
  }
  if (total->steal_share >= 0 && part.steal_share >= 0 && total->r.seconds + part.r.seconds > 0) {
    total->steal_share = (total->steal_share * seconds_before + part.steal_share * part.r.seconds) /
                         (seconds_before + part.r.seconds);
  }
  Merge(&total->r, part.r);
  if (total->r.seconds > 0) {
    total->server_cores =
        (total->server_cores * seconds_before + part.server_cores * part.r.seconds) /
        total->r.seconds;
  }
  if (!part.note.empty()) total->note = part.note;
  if (!part.ran) {
    total->ran = false;
    total->not_run = part.not_run;
  }
}

// A scenario and its baseline measured in slices side by side (bench/rounds.h): each one's
// totals, the rates and p99s of every slice, and the scenario's ratios to its baseline slice by
// slice.
struct Pairs {
  Row base, row;
  SlicePairs qps, p99;
  void AddBase(const Row& b) {
    AddSlice(&base, b, qps.base().empty());
    qps.AddBase(b.r.qps);
    p99.AddBase(b.r.p99_ms);
  }
  void AddRow(const Row& r) {
    AddSlice(&row, r, qps.row().empty());
    qps.AddRow(r.r.qps);
    p99.AddRow(r.r.p99_ms);
  }
  // The two rows, the scenario's with its slices' rates and ratios; the samples, merged already,
  // dropped.
  void Finish(Row* base_out, Row* row_out) {
    *base_out = std::move(base);
    *row_out = std::move(row);
    row_out->slice_ratios = qps.Ratios();
    row_out->slice_p99_ratios = p99.Ratios();
    row_out->slice_qps = qps.row();
    row_out->baseline_slice_qps = qps.base();
    row_out->slice_baseline_qps = qps.Around();
    base_out->r.samples.clear();
    row_out->r.samples.clear();
  }
};

// One paired row of those measured together (Bench::Interleave): how to measure a slice of its
// baseline and of its scenario, and the baseline row's name. Rows next to each other whose
// baselines have the same key share the baseline slice between them.
struct Interleaved {
  std::string op, base_op, key;
  std::function<Row()> base, row;
  std::function<void()> prepare;  // at the start of each visit (bench/rounds.h); may be empty
  Pairs pairs;
};

struct Setting {
  std::string cloud, image, type;
};

class Bench {
 public:
  Bench() {
    scale_ = std::max(100, EnvInt("BENCH_SCALE", 10000));
    templates_n_ = std::max(10, EnvInt("BENCH_TEMPLATES", 1000));
    seconds_ = EnvDouble("BENCH_SECONDS", 12);
    warmup_ = EnvDouble("BENCH_WARMUP", 1);
    slice_ = std::max(0.05, EnvDouble("BENCH_SLICE", 1));
    slice_warmup_ = std::max(0.0, EnvDouble("BENCH_SLICE_WARMUP", 0.2));
    channels_n_ = std::max(1, EnvInt("BENCH_CHANNELS", 4));
    client_threads_ = std::max(1, EnvInt("BENCH_CLIENT_THREADS", 2));
    launch_set_ = std::max(10, EnvInt("BENCH_LAUNCH_SET", 1000));
    for (auto part : absl::StrSplit(EnvString("BENCH_ONLY", ""), ',', absl::SkipEmpty())) {
      only_.emplace_back(part);
    }
    results_dir_ = EnvString("BENCH_RESULTS", std::string(MCI_BENCH_DIR) + "/results");
    bearer_ =
        "Bearer " + mci::testing::Token(kAccount, {auth::Role::kObserver, auth::Role::kDesigner});
  }

  int Run();

 private:
  bool Wanted(const std::string& op) const {
    if (only_.empty()) return true;
    for (const auto& p : only_) {
      if (op.rfind(p, 0) == 0) return true;
    }
    return false;
  }
  bool Start();
  bool Durable();
  void Settle();
  void SeedSql(int from, int to);
  void SeedReplica(pqxx::connection& catalog, int lo, int hi);
  bool SeedApi();
  void Memory(const std::string& when);
  std::vector<pid_t> PgPids();
  double PgCpu();
  Row Measure(const std::string& op, const std::string& group, int in_flight,
              const std::vector<pid_t>& servers, const Issue& issue, int64_t max_ops = 0);
  // An echo call carrying `request_bytes` and answering `response_bytes`.
  Issue EchoIssue(size_t request_bytes, size_t response_bytes);
  // The bytes of one request and reply of a read scenario, for its echo baseline.
  struct Sizes {
    size_t request = 60, response = 400;
  };
  // One side of a paired row (Pair): a scenario, its group and the processes that serve it.
  struct Side {
    std::string op, group;
    std::vector<pid_t> servers;
    Issue issue;
  };
  // One slice of a side at `in_flight`.
  Row Slice(const Side& side, int in_flight) {
    return Measure(side.op, side.group, in_flight, side.servers, side.issue);
  }
  // A paired row of a scenario (`second`) and its baseline (`first`), for Interleave: rows whose
  // baselines have the same `key` may share a baseline slice.
  Interleaved Pair(const Side& first, const Side& second, int in_flight, std::string key);
  // Paired rows measured together in rounds (BENCH_SECONDS / BENCH_SLICE of them): each round
  // measures every row once, a scenario slice between two of its baseline's, so that each row's
  // slices spread over the whole of the rows' time rather than a few seconds of it.
  // `slice_seconds`: BENCH_SLICE where 0.
  void Interleave(std::vector<Interleaved>* rows, double slice_seconds = 0);
  // The baseline's row, then the scenario's with its ratio to it (the median of its slices'
  // ratios, each over the mean of the baseline's slices around it).
  std::pair<Row, Row> Finish(Interleaved* paired);
  // A read scenario's row paired with the echo ceiling at the same concurrency, the echo call
  // carrying as many bytes as the scenario's request and reply.
  Interleaved EchoPaired(const std::string& op, int in_flight, const std::vector<pid_t>& servers,
                         const Issue& issue, Sizes sizes);
  void Reads(const std::string& suffix);
  // The read scenarios' requests: seed-n at `revision` (on the c-th of the three clouds it
  // covers, c < 3), and ResolveLaunch of the t-th template on cloud c (c < 4: the clouds of
  // `popular`, every template's default MCI).
  cpb::ResolveImageRequest ResolveRequest(int n, int c, int64_t revision) const;
  static cpb::GetMultiCloudImageRequest GetRequest(int n, int64_t revision);
  tpb::ResolveLaunchRequest LaunchRequest(size_t t, int c) const;
  // Calls of those, uniformly over the launch set (and every template).
  // The read rows' calls: RawUnary over the four channels, cycling at random through requests
  // serialized once (the same requests the outside client sends).
  Issue RawIssue(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                 const std::string& method, const std::vector<std::string>& requests);
  std::vector<std::string> ResolveRequests(int64_t revision) const;
  std::vector<std::string> GetRequests(int64_t revision) const;
  std::vector<std::string> LaunchRequests() const;
  // A pass over `requests`, each sent once at `in_flight`, not measured: run before each visit
  // of a row that reads HEAD answers, it refills what expired since the row's last visit (HEAD
  // answers live 5-10 s unless read meanwhile, and a round takes longer), so that every visit
  // measures the steady state of a launch set in constant use, as the warm-up before the first.
  std::function<void()> Refill(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                               const std::string& method, const std::vector<std::string>& requests,
                               int in_flight);
  Issue ResolveIssue(int64_t revision);
  Issue GetIssue(int64_t revision);
  Issue LaunchIssue();
  void Lists(const std::string& suffix);
  // The read scenarios again, driven by the outside client against the same stack, each between
  // two of its echo runs.
  void Outside();
  struct OutsideRun {
    bool ok = false;
    std::string error;
    LoadResult r;
    double sent = 0;          // calls made, the warm-up's included
    double server_cpu_s = 0;  // the servers' CPU over the whole run
    double client_cpu_s = 0;  // the outside client's, likewise
  };
  // `method` as on the wire ("/package.Service/Method"); grpcload takes it without the '/'.
  OutsideRun RunOutside(const std::string& address, const std::string& method,
                        const std::string& request, int in_flight,
                        const std::vector<pid_t>& servers);
  void Writes();
  void Events();
  // For `seconds` (0: BENCH_SECONDS).
  Row Pgbench(const std::string& op, const std::string& database, const std::string& script,
              const std::vector<std::string>& defines, int clients, double seconds = 0);
  Interleaved WritePaired(const std::string& op, const std::vector<pid_t>& servers,
                          const Issue& issue, const std::string& base_op,
                          const std::string& database, const std::string& script,
                          const std::vector<std::string>& defines);
  void Judge();
  void Print();
  void WriteJson();

  std::vector<std::shared_ptr<grpc::Channel>> Channels(const std::string& address) const {
    return Connections(address, channels_n_);
  }
  void Prepare(grpc::ClientContext* ctx, const std::string& bearer) const {
    ctx->AddMetadata("authorization", bearer);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }
  std::unique_ptr<grpc::ClientContext> SyncContext(const std::string& bearer) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    Prepare(ctx.get(), bearer);
    return ctx;
  }
  Setting SettingFor(int cloud_index) const {
    return settings_[static_cast<size_t>(cloud_index) % settings_.size()];
  }

  // The seeded MCIs the write and event scenarios pick from (seed-1..seed-N): at most 10,000,
  // whatever BENCH_SCALE.
  int WriteSeeds() const { return std::min(seeded_, 10000); }
  // A measurement in slices sets the length and warm-up of each; this puts BENCH_SECONDS and
  // BENCH_WARMUP back when it goes.
  class SliceTiming {
   public:
    explicit SliceTiming(Bench* bench)
        : bench_(bench), seconds_(bench->seconds_), warmup_(bench->warmup_) {}
    ~SliceTiming() {
      bench_->seconds_ = seconds_;
      bench_->warmup_ = warmup_;
    }
    double seconds() const { return seconds_; }
    double warmup() const { return warmup_; }

   private:
    Bench* bench_;
    double seconds_, warmup_;
  };

  int scale_, templates_n_, channels_n_, launch_set_;
  int client_threads_;  // the client's completion-queue threads
  double seconds_, warmup_;
  // Paired read rows: seconds per slice, and the warm-up of each slice after the first.
  double slice_, slice_warmup_;
  std::vector<std::string> only_;
  std::string results_dir_;
  std::string bearer_;
  std::string outside_;           // BENCH_OUTSIDE
  std::string outside_args_;      // BENCH_OUTSIDE_ARGS: more options for it
  std::string outside_perfstat_;  // BENCH_OUTSIDE_PERFSTAT: "", "1", "switches" or "cpu"

  std::unique_ptr<Stack> stack_;
  std::unique_ptr<CompletionQueues> cqs_;  // every asynchronous call of the bench's client
  std::unique_ptr<ServiceProcess> echo_;
  std::string echo_address_;
  pid_t catalog_pid_ = -1, templates_pid_ = -1, marketplace_pid_ = -1, echo_pid_ = -1;
  bool templates_up_ = false, marketplace_up_ = false;
  std::string templates_down_why_, marketplace_down_why_;
  std::vector<std::unique_ptr<cpb::CatalogService::Stub>> catalog_;
  std::vector<std::unique_ptr<tpb::ServerTemplateService::Stub>> templates_;
  // The same connections, for the read rows' completion-queue client (RawUnary).
  std::vector<std::shared_ptr<grpc::Channel>> catalog_channels_, templates_channels_,
      echo_channels_;

  std::vector<Setting> settings_;  // one valid setting per cloud
  int seeded_ = 0;                 // seed-1..seed-N in account bench
  int64_t max_seed_row_id_ = 0;
  std::string popular_;        // HEAD name of the MCI every template references
  std::string prop_mci_;       // HEAD name of the MCI toggled for event propagation
  std::string prop_template_;  // a template referencing prop_mci_
  int prop_cloud_ = 0;
  std::vector<std::string> template_names_;
  std::atomic<int64_t> counter_{0};
  // Request and reply bytes of each read (measured on seeded data), for their echo baselines.
  Sizes resolve_sizes_, get_sizes_[2], launch_sizes_;

  std::vector<Row> rows_;
  std::map<std::string, double> facts_;
  std::string started_at_;
};

// `perf stat` of `pids` (CPU, context switches and the socket and poll syscalls) while it lives,
// appended to `file`, or (`mode` "switches", "cpu") a `perf record` of their context switches or
// of their CPU into file.<n>.data; nothing when `file` is empty. BENCH_OUTSIDE_PERFSTAT, for the
// outside rows.
class PerfStat {
 public:
  PerfStat(const std::vector<pid_t>& pids, const std::string& file, const std::string& mode) {
    if (file.empty() || pids.empty()) return;
    std::string list;
    for (pid_t p : pids) absl::StrAppend(&list, list.empty() ? "" : ",", p);
    if (mode == "switches" || mode == "cpu") {
      // Where the services' threads block, or spend their CPU: one profile per slice, numbered
      // in order (the bench client's slices even, the outside client's odd).
      static int n = 0;
      args_ = {"perf", "record", "-q"};
      if (mode == "switches") {
        args_.insert(args_.end(), {"-e", "sched:sched_switch", "-g"});
      } else {
        args_.insert(args_.end(), {"-F", "999"});
      }
      args_.insert(args_.end(), {"-o", absl::StrCat(file, ".", n++, ".data"), "-p", list});
    } else {
      args_ = {"perf",
               "stat",
               "-x,",
               "--append",
               "-o",
               file,
               "-e",
               "task-clock,context-switches,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg,"
               "syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex",
               "-p",
               list};
    }
    std::vector<char*> argv;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();  // the child only execs
    if (pid_ == 0) {
      execvp(argv[0], argv.data());
      _exit(127);
    }
  }
  ~PerfStat() {
    if (pid_ <= 0) return;
    kill(pid_, SIGINT);
    waitpid(pid_, nullptr, 0);
  }
  PerfStat(const PerfStat&) = delete;
  PerfStat& operator=(const PerfStat&) = delete;

 private:
  std::vector<std::string> args_;
  pid_t pid_ = -1;
};

bool Bench::Start() {
  started_at_ = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  const std::string bin = MCI_BIN_DIR;
  Stack::Options options;
  options.catalog = true;
  std::string templates_bin = bin + "/services/templates/template-reference-service";
  std::string marketplace_bin = bin + "/services/marketplace/marketplace-service";
  options.templates = access(templates_bin.c_str(), X_OK) == 0;
  options.marketplace = access(marketplace_bin.c_str(), X_OK) == 0;
  if (!options.templates) templates_down_why_ = "template-reference-service was not built";
  if (!options.marketplace) marketplace_down_why_ = "marketplace-service was not built";
  options.catalog_flags = {"--log-level=warn"};
  options.templates_flags = {"--log-level=warn"};
  options.marketplace_flags = {"--log-level=warn"};
  Log("starting PostgreSQL, NATS and the services");
  // PostgreSQL with its defaults: fsync, synchronous commit and full-page writes on, as in
  // production (the tests turn them off on the command line, which ALTER SYSTEM cannot undo).
  setenv("MCI_TEST_PG_DURABLE", "1", 1);
  // Commit times on every transaction, which event propagation is measured by (a few bytes per
  // commit in an SLRU, the same for pgbench's transactions and the services').
  {
    const char* extra = std::getenv("MCI_TEST_PG_SETTINGS");
    std::string settings = extra == nullptr ? "" : std::string(extra) + ";";
    setenv("MCI_TEST_PG_SETTINGS", (settings + "track_commit_timestamp=on").c_str(), 1);
  }
  stack_ = std::make_unique<Stack>(options);
  if (mci::testing::HealthCheck(stack_->catalog_address(), "").value_or(0) != 1) {
    Log("the catalog did not start: " + stack_->status().ToString());
    return false;
  }
  if (options.templates) {
    templates_up_ = mci::testing::HealthCheck(stack_->templates_address(), "").value_or(0) == 1;
    if (!templates_up_) templates_down_why_ = "template-reference-service did not start";
  }
  if (options.marketplace) {
    marketplace_up_ = mci::testing::HealthCheck(stack_->marketplace_address(), "").value_or(0) == 1;
    if (!marketplace_up_) marketplace_down_why_ = "marketplace-service did not start";
  }
  echo_address_ = absl::StrCat("127.0.0.1:", mci::testing::FreePort());
  echo_ =
      std::make_unique<ServiceProcess>("echo", bin + "/bench/mci-echo-server",
                                       std::vector<std::string>{"--grpc-address=" + echo_address_});
  if (auto s = echo_->WaitServing(echo_address_, absl::Seconds(20)); !s.ok()) {
    Log("the echo server did not start: " + s.ToString());
    return false;
  }
  auto pid_of = [](const std::string& exe) {
    auto pids = ChildrenNamed(getpid(), exe);
    return pids.empty() ? -1 : pids[0];
  };
  catalog_pid_ = pid_of("catalog-service");
  templates_pid_ = templates_up_ ? pid_of("template-reference-service") : -1;
  marketplace_pid_ = marketplace_up_ ? pid_of("marketplace-service") : -1;
  echo_pid_ = pid_of("mci-echo-server");
  cqs_ = std::make_unique<CompletionQueues>(client_threads_);
  catalog_channels_ = Channels(stack_->catalog_address());
  for (auto& ch : catalog_channels_) catalog_.push_back(cpb::CatalogService::NewStub(ch));
  if (templates_up_) {
    templates_channels_ = Channels(stack_->templates_address());
    for (auto& ch : templates_channels_)
      templates_.push_back(tpb::ServerTemplateService::NewStub(ch));
  }
  echo_channels_ = Channels(echo_address_);
  return Durable();
}

// The benchmark measures the real thing: PostgreSQL with fsync, synchronous commit and full-page
// writes on. Checked, not assumed: until 2026-12-02 the bench asked for them with ALTER SYSTEM,
// which the harness's command-line settings silently outranked.
bool Bench::Durable() {
  pqxx::connection conn(stack_->postgres().Url("postgres"));
  pqxx::nontransaction txn(conn);
  for (const char* setting : {"fsync", "synchronous_commit", "full_page_writes"}) {
    std::string value = txn.exec1(absl::StrCat("SHOW ", setting))[0].as<std::string>();
    if (value != "on") {
      Log(absl::StrCat("PostgreSQL runs with ", setting, " = ", value, ", not on: not measuring"));
      return false;
    }
  }
  Log("PostgreSQL durable: fsync, synchronous_commit and full_page_writes on");
  return true;
}

std::vector<pid_t> Bench::PgPids() {
  std::vector<pid_t> out = ChildrenNamed(getpid(), "postgres");
  if (out.empty()) return out;
  auto d = Descendants(out[0]);
  out.insert(out.end(), d.begin(), d.end());
  return out;
}

// PostgreSQL's CPU time: the postmaster with its reaped children and the live backends.
double Bench::PgCpu() {
  auto pids = ChildrenNamed(getpid(), "postgres");
  if (pids.empty()) return 0;
  double total = 0;
  {
    std::ifstream in("/proc/" + std::to_string(pids[0]) + "/stat");
    std::string line;
    std::getline(in, line);
    size_t close = line.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 2));
      std::vector<std::string> f;
      std::string x;
      while (rest >> x) f.push_back(x);
      static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      if (f.size() > 14) {
        total += (std::atof(f[11].c_str()) + std::atof(f[12].c_str()) + std::atof(f[13].c_str()) +
                  std::atof(f[14].c_str())) /
                 ticks;
      }
    }
  }
  return total + CpuSeconds(Descendants(pids[0]));
}

void Bench::Memory(const std::string& when) {
  for (auto [name, pid] : {std::pair<std::string, pid_t>{"catalog", catalog_pid_},
                           {"templates", templates_pid_},
                           {"marketplace", marketplace_pid_}}) {
    Row row;
    row.op = absl::StrCat("RSS ", name, " ", when);
    row.group = "memory";
    if (pid <= 0) {
      row.not_run = name == "templates"     ? templates_down_why_
                    : name == "marketplace" ? marketplace_down_why_
                                            : "not running";
    } else {
      row.ran = true;
      row.r.mean_ms = RssMiB(pid);  // MiB, shown in its own column
      if (when == "idle") row.target = "<= 64 MB";
    }
    rows_.push_back(row);
  }
}

// Bulk-loads seed-<from>..seed-<to> into account "bench" straight into the catalog's tables,
// with 3-5 settings on HEAD and the same on committed revision 1: the shape the API would give
// (Create + settings + Commit), at a speed that makes a million MCIs practical.
void Bench::SeedSql(int from, int to) {
  pqxx::connection conn(stack_->postgres().Url("catalog"));
  const int clouds = static_cast<int>(settings_.size());
  {
    pqxx::work txn(conn);
    txn.exec(
        "CREATE TABLE IF NOT EXISTS bench_clouds (ord int PRIMARY KEY, cloud_id text,"
        " image_id text, type_id text)");
    txn.exec("TRUNCATE bench_clouds");
    for (int i = 0; i < clouds; ++i) {
      txn.exec_params("INSERT INTO bench_clouds VALUES ($1, $2, $3, $4)", i, settings_[i].cloud,
                      settings_[i].image, settings_[i].type);
    }
    txn.commit();
  }
  const int chunk = 50000;
  for (int lo = from; lo <= to; lo += chunk) {
    int hi = std::min(to, lo + chunk - 1);
    pqxx::work txn(conn);
    // MCI n covers 3 + n % 3 consecutive clouds starting at cloud n % C.
    const std::string covers =
        absl::StrCat("((c.ord - (g % ", clouds, ") + ", clouds, ") % ", clouds, ") < 3 + (g % 3)");
    txn.exec_params(
        absl::StrCat(
            "INSERT INTO mcis (account, mci_id, display_name, description, tags, origin_kind,"
            " lineage, latest_revision, head_clouds)"
            " SELECT $1, 'seed-' || g, 'Seed ' || g, 'Seeded by the benchmark', ARRAY[$2],"
            " 1, 'accounts/' || $1 || '/multiCloudImages/seed-' || g, 1,"
            " ARRAY(SELECT c.cloud_id FROM bench_clouds c WHERE ",
            covers, " ORDER BY c.cloud_id) FROM generate_series($3::int, $4::int) g"),
        kAccount, kAgentTag, lo, hi);
    txn.exec_params(
        "INSERT INTO mci_revisions (mci, revision, display_name, description, tags,"
        " commit_message) SELECT id, 1, display_name, description, tags, 'seeded'"
        " FROM mcis WHERE account = $1 AND mci_id = ANY(ARRAY(SELECT 'seed-' || g"
        " FROM generate_series($2::int, $3::int) g))",
        kAccount, lo, hi);
    txn.exec_params(
        absl::StrCat("INSERT INTO mci_settings (mci, revision, cloud_id, image_id, instance_type)"
                     " SELECT m.id, r.rev, c.cloud_id, c.image_id, c.type_id"
                     " FROM generate_series($2::int, $3::int) g"
                     " JOIN mcis m ON m.account = $1 AND m.mci_id = 'seed-' || g"
                     " CROSS JOIN (VALUES (0), (1)) r(rev) JOIN bench_clouds c ON ",
                     covers),
        kAccount, lo, hi);
    txn.commit();
    if (templates_up_) SeedReplica(conn, lo, hi);
    if (to - from > chunk) Log(absl::StrCat("  seeded ", hi, " MCIs"));
  }
  pqxx::nontransaction txn(conn);
  txn.exec("ANALYZE mcis");
  txn.exec("ANALYZE mci_settings");
  txn.exec("ANALYZE mci_revisions");
  max_seed_row_id_ =
      txn.exec_params("SELECT max(id) FROM mcis WHERE account = $1", kAccount)[0][0].as<int64_t>();
  seeded_ = to;
}

// What the template-reference consumer would have written for seed-<lo>..seed-<hi> had they
// come through the API (their CREATED and COMMITTED events): the replica rows, so that a
// reference to a seeded MCI finds it known, as it would in a catalog grown by the API.
void Bench::SeedReplica(pqxx::connection& catalog, int lo, int hi) {
  pqxx::nontransaction read(catalog);
  pqxx::result r = read.exec_params(
      "SELECT m.mci_id, m.display_name, m.event_seq,"
      " array_to_string(ARRAY(SELECT 'clouds/' || x FROM unnest(m.head_clouds) x), ','),"
      " array_to_string(ARRAY(SELECT 'clouds/' || s.cloud_id FROM mci_settings s"
      "  WHERE s.mci = m.id AND s.revision = 1 ORDER BY s.cloud_id), ',')"
      " FROM mcis m WHERE m.account = $1 AND m.mci_id = ANY(ARRAY(SELECT 'seed-' || g"
      " FROM generate_series($2::int, $3::int) g))",
      kAccount, lo, hi);
  pqxx::connection templates(stack_->postgres().Url("templates"));
  pqxx::work txn(templates);
  std::vector<std::string> replicas, revisions;
  for (const auto& row : r) {
    std::string mci = txn.quote(MciName(kAccount, row[0].c_str()));
    replicas.push_back(absl::StrCat("(", mci, ",", txn.quote(kAccount), ",",
                                    txn.quote(row[1].c_str()), ", 1, ", row[2].c_str(),
                                    ", string_to_array(", txn.quote(row[3].c_str()), ", ','), 1)"));
    revisions.push_back(
        absl::StrCat("(", mci, ", 1, string_to_array(", txn.quote(row[4].c_str()), ", ','))"));
  }
  if (replicas.empty()) return;
  txn.exec(absl::StrCat(
      "INSERT INTO mci_replica (mci, account, display_name, state, sequence, head_clouds,"
      " row_version) VALUES ",
      absl::StrJoin(replicas, ","), " ON CONFLICT DO NOTHING"));
  txn.exec(absl::StrCat("INSERT INTO mci_replica_revisions (mci, revision, clouds) VALUES ",
                        absl::StrJoin(revisions, ","), " ON CONFLICT DO NOTHING"));
  txn.commit();
}

// Through the API: the MCIs that templates reference (so that the template-reference replica
// hears of them by events) and the templates.
bool Bench::SeedApi() {
  // One valid setting per cloud: a 64-bit machine image and an instance type for it.
  {
    cpb::ListImagesRequest req;
    req.set_parent("clouds/-");
    req.set_kind(cpb::MACHINE);
    req.set_page_size(1000);
    cpb::ListImagesResponse images;
    auto ctx = SyncContext(bearer_);
    if (!catalog_[0]->ListImages(ctx.get(), req, &images).ok()) return false;
    cpb::ListCloudsRequest creq;
    cpb::ListCloudsResponse clouds;
    auto cctx = SyncContext(bearer_);
    if (!catalog_[0]->ListClouds(cctx.get(), creq, &clouds).ok()) return false;
    for (const auto& cloud : clouds.clouds()) {
      cpb::ListInstanceTypesRequest treq;
      treq.set_parent(cloud.name());
      cpb::ListInstanceTypesResponse types;
      auto tctx = SyncContext(bearer_);
      if (!catalog_[0]->ListInstanceTypes(tctx.get(), treq, &types).ok()) continue;
      for (const auto& image : images.images()) {
        if (image.name().rfind(cloud.name() + "/", 0) != 0) continue;
        std::string type;
        for (const auto& t : types.instance_types()) {
          for (int a : t.architectures()) {
            if (a == image.architecture() && type.empty()) type = t.name();
          }
        }
        if (type.empty()) continue;
        auto id = [](const std::string& full) { return full.substr(full.rfind('/') + 1); };
        settings_.push_back({id(cloud.name()), id(image.name()), id(type)});
        break;
      }
    }
  }
  if (settings_.size() < 5) {
    Log(absl::StrCat("the inventory has ", settings_.size(), " usable clouds; 5 are needed"));
    return false;
  }
  Log(absl::StrCat("seeding ", std::min(scale_, 10000), " MCIs (SQL bulk load)"));
  SeedSql(1, std::min(scale_, 10000));

  // Two MCIs through the API: the one every template references, and the one toggled to measure
  // event propagation.
  auto create = [&](const std::string& id, int clouds) -> bool {
    cpb::CreateMultiCloudImageRequest req;
    req.set_parent(absl::StrCat("accounts/", kAccount));
    req.set_multi_cloud_image_id(id);
    req.mutable_multi_cloud_image()->set_display_name(id);
    req.mutable_multi_cloud_image()->add_tags(kAgentTag);
    cpb::MultiCloudImage out;
    auto ctx = SyncContext(bearer_);
    grpc::Status s = catalog_[0]->CreateMultiCloudImage(ctx.get(), req, &out);
    if (!s.ok()) {
      Log("create " + id + ": " + s.error_message());
      return false;
    }
    for (int c = 0; c < clouds; ++c) {
      cpb::CreateMultiCloudImageSettingRequest sreq;
      sreq.set_parent(out.name());
      Setting st = SettingFor(c);
      sreq.mutable_setting()->set_cloud("clouds/" + st.cloud);
      sreq.mutable_setting()->set_image("clouds/" + st.cloud + "/images/" + st.image);
      sreq.mutable_setting()->set_instance_type("clouds/" + st.cloud + "/instanceTypes/" + st.type);
      cpb::MultiCloudImageSetting sout;
      auto sctx = SyncContext(bearer_);
      if (!catalog_[0]->CreateMultiCloudImageSetting(sctx.get(), sreq, &sout).ok()) return false;
    }
    cpb::CommitMultiCloudImageRequest creq;
    creq.set_name(out.name());
    creq.set_message("bench");
    auto cctx = SyncContext(bearer_);
    return catalog_[0]->CommitMultiCloudImage(cctx.get(), creq, &out).ok();
  };
  popular_ = MciName(kAccount, "popular");
  prop_mci_ = MciName(kAccount, "propagation");
  if (!create("popular", 4) || !create("propagation", 3)) return false;
  prop_cloud_ = 4;  // not among its first three clouds

  {
    cpb::ResolveImageRequest req;
    req.set_name(MciName(kAccount, "seed-1"));
    req.set_cloud("clouds/" + SettingFor(1).cloud);
    cpb::ResolveImageResponse resp;
    auto ctx = SyncContext(bearer_);
    if (catalog_[0]->ResolveImage(ctx.get(), req, &resp).ok()) {
      resolve_sizes_ = {req.ByteSizeLong(), resp.ByteSizeLong()};
    }
  }
  for (int64_t revision : {int64_t{0}, int64_t{1}}) {
    cpb::GetMultiCloudImageRequest req;
    req.set_name(MciName(kAccount, "seed-1", revision));
    cpb::MultiCloudImage resp;
    auto ctx = SyncContext(bearer_);
    if (catalog_[0]->GetMultiCloudImage(ctx.get(), req, &resp).ok()) {
      get_sizes_[revision] = {req.ByteSizeLong(), resp.ByteSizeLong()};
    }
  }

  if (!templates_up_) return true;
  Log(absl::StrCat("seeding ", templates_n_, " ServerTemplates through the API"));
  std::atomic<int> next{1};
  std::atomic<int> failures{0};
  std::string first_error;
  std::mutex error_mu;
  std::vector<std::thread> workers;
  template_names_.resize(static_cast<size_t>(templates_n_));
  for (int w = 0; w < 8; ++w) {
    workers.emplace_back([&, w] {
      auto* stub = templates_[static_cast<size_t>(w) % templates_.size()].get();
      for (int i = next++; i <= templates_n_; i = next++) {
        auto fail = [&](const grpc::Status& s) {
          ++failures;
          std::lock_guard<std::mutex> lock(error_mu);
          if (first_error.empty()) first_error = s.error_message();
        };
        tpb::CreateServerTemplateRequest req;
        req.set_parent(absl::StrCat("accounts/", kAccount));
        req.set_server_template_id(absl::StrCat("t-", i));
        req.mutable_server_template()->set_display_name(absl::StrCat("Template ", i));
        tpb::ServerTemplate t;
        auto ctx = SyncContext(bearer_);
        grpc::Status s = stub->CreateServerTemplate(ctx.get(), req, &t);
        if (!s.ok()) {
          fail(s);
          continue;
        }
        template_names_[static_cast<size_t>(i - 1)] = t.name();
        for (const std::string& mci :
             {popular_, MciName(kAccount, absl::StrCat("seed-", 1 + (i * 7919) % seeded_), 1),
              i == 1 ? prop_mci_ : std::string()}) {
          if (mci.empty()) continue;
          tpb::AddMultiCloudImageRequest a;
          a.set_server_template(t.name());
          a.set_multi_cloud_image(mci);
          a.set_make_default(mci == popular_);
          auto actx = SyncContext(bearer_);
          s = stub->AddMultiCloudImage(actx.get(), a, &t);
          if (!s.ok()) fail(s);
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  if (failures > 0) {
    Log(absl::StrCat(failures.load(), " template seeding calls failed; first: ", first_error));
  }
  prop_template_ = template_names_.empty() ? "" : template_names_[0];
  if (!template_names_.empty()) {
    tpb::ResolveLaunchRequest req;
    req.set_server_template(template_names_[0]);
    req.set_cloud("clouds/" + SettingFor(1).cloud);
    tpb::ResolveLaunchResponse resp;
    auto ctx = SyncContext(bearer_);
    if (templates_[0]->ResolveLaunch(ctx.get(), req, &resp).ok()) {
      launch_sizes_ = {req.ByteSizeLong(), resp.ByteSizeLong()};
    }
  }
  return true;
}

Row Bench::Measure(const std::string& op, const std::string& group, int in_flight,
                   const std::vector<pid_t>& servers, const Issue& issue, int64_t max_ops) {
  Row row;
  row.op = op;
  row.group = group;
  row.in_flight = in_flight;
  LoadOptions options;
  options.in_flight = in_flight;
  options.warmup_s = warmup_;
  options.duration_s = seconds_;
  options.max_ops = max_ops;
  double cpu0 = 0, cpu1 = 0, pg0 = 0, pg1 = 0, client0 = 0, client1 = 0, steal0 = 0, steal1 = 0;
  if (warmup_ >= 0.5) Log(absl::StrCat("running ", op, " with ", in_flight, " in flight"));
  // BENCH_PERF=<operation prefix>: a perf profile of the servers during that scenario's window.
  bool profile = false;
  for (auto prefix : absl::StrSplit(EnvString("BENCH_PERF", ""), ',', absl::SkipEmpty())) {
    if (absl::StartsWith(op, prefix)) profile = true;
  }
  row.r = RunLoad(
      options, issue,
      [&] {
        cpu0 = CpuSeconds(servers);
        pg0 = PgCpu();
        client0 = CpuSeconds(getpid());
        steal0 = StealSeconds();
        if (profile) {
          // The services and PostgreSQL's backends: `perf report --sort comm,dso` splits them.
          std::string pids;
          std::vector<pid_t> all = servers;
          for (pid_t p : PgPids()) all.push_back(p);
          for (pid_t p : all) absl::StrAppend(&pids, pids.empty() ? "" : ",", p);
          std::string out =
              absl::StrCat(results_dir_, "/perf-", in_flight, "-",
                           absl::StrReplaceAll(op, {{" ", "_"}, {"@", "at"}}), ".data");
          Log("profiling into " + out);
          std::system(absl::StrCat("perf record -F 1999 ", EnvString("BENCH_PERF_ARGS", ""), " -p ",
                                   pids, " -o ", out, " -- sleep ", static_cast<int>(seconds_),
                                   " > /dev/null 2>&1 &")
                          .c_str());
        }
      },
      [&] {
        cpu1 = CpuSeconds(servers);
        pg1 = PgCpu();
        client1 = CpuSeconds(getpid());
        steal1 = StealSeconds();
      });
  row.ran = true;
  int64_t ops = row.r.ok + row.r.errors;
  if (ops > 0) {
    row.server_cpu_us = (cpu1 - cpu0) / static_cast<double>(ops) * 1e6;
    row.pg_cpu_us = (pg1 - pg0) / static_cast<double>(ops) * 1e6;
    row.client_cpu_us = (client1 - client0) / static_cast<double>(ops) * 1e6;
  }
  if (row.r.seconds > 0) {
    row.server_cores = (cpu1 - cpu0) / row.r.seconds;
    row.steal_share = (steal1 - steal0) / (row.r.seconds * Cpus());
  }
  if (row.r.errors > 0) {
    row.note = absl::StrCat(row.r.errors, " errors (", row.r.first_error.substr(0, 120), ")");
  }
  return row;
}

Issue Bench::RawIssue(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                      const std::string& method, const std::vector<std::string>& requests) {
  auto raw = std::make_shared<RawUnary>(cqs_.get(), channels, method, requests, bearer_);
  return [raw](int slot, Done done) { raw->Start(slot, std::move(done)); };
}

Issue Bench::EchoIssue(size_t request_bytes, size_t response_bytes) {
  epb::EchoRequest req;
  req.set_payload(std::string(request_bytes, 'r'));
  req.set_response_bytes(static_cast<int>(response_bytes));
  return RawIssue(echo_channels_, kEchoMethod, {req.SerializeAsString()});
}

Interleaved Bench::Pair(const Side& first, const Side& second, int in_flight, std::string key) {
  Interleaved paired;
  paired.op = second.op;
  paired.base_op = first.op;
  paired.key = std::move(key);
  paired.base = [this, first, in_flight] { return Slice(first, in_flight); };
  paired.row = [this, second, in_flight] { return Slice(second, in_flight); };
  return paired;
}

// Rounds rather than each row's slices in a run: the machine's state holds for seconds to tens of
// seconds, longer than a slice pair, so a row measured in one stretch carried that stretch's state
// into its ratio, and a rerun found another (a row's ratio moved 7.7% between runs, root mean
// square, against 5.6% in rounds: docs/performance-history.md, change 47).
void Bench::Interleave(std::vector<Interleaved>* rows, double slice_seconds) {
  if (rows->empty()) return;
  const double length = slice_seconds > 0 ? slice_seconds : slice_;
  const int rounds = std::max(1, static_cast<int>(std::lround(seconds_ / length)));
  const SliceTiming saved(this);
  seconds_ = saved.seconds() / rounds;
  std::vector<std::string> keys;
  for (const Interleaved& paired : *rows) keys.push_back(paired.key);
  bool first = true;
  MeasureInRounds<Row>(
      keys, rounds,
      [&](size_t i) {
        if ((*rows)[i].prepare) (*rows)[i].prepare();
      },
      [&](size_t i, bool base) {
        warmup_ = first ? saved.warmup() : slice_warmup_;
        first = false;
        return base ? (*rows)[i].base() : (*rows)[i].row();
      },
      [&](size_t i, bool base, const Row& slice) {
        if (base) {
          (*rows)[i].pairs.AddBase(slice);
        } else {
          (*rows)[i].pairs.AddRow(slice);
        }
      });
}

std::pair<Row, Row> Bench::Finish(Interleaved* paired) {
  Row base, row;
  paired->pairs.Finish(&base, &row);
  base.op = paired->base_op;  // its first slice may have been another row's
  row.baseline = base.op;
  row.baseline_qps = base.r.qps;
  row.baseline_p50 = base.r.p50_ms;
  row.baseline_p99 = base.r.p99_ms;
  return {base, row};
}

Interleaved Bench::EchoPaired(const std::string& op, int in_flight,
                              const std::vector<pid_t>& servers, const Issue& issue, Sizes sizes) {
  return Pair({absl::StrCat("echo (with ", op, ")"),
               "echo",
               {echo_pid_},
               EchoIssue(sizes.request, sizes.response)},
              {op, "read", servers, issue}, in_flight,
              absl::StrCat("echo ", sizes.request, "/", sizes.response));
}

cpb::ResolveImageRequest Bench::ResolveRequest(int n, int c, int64_t revision) const {
  cpb::ResolveImageRequest req;
  req.set_name(MciName(kAccount, absl::StrCat("seed-", n), revision));
  // seed-n covers clouds n % C .. n % C + 2 (at least three).
  req.set_cloud("clouds/" + SettingFor(n + c).cloud);
  return req;
}

cpb::GetMultiCloudImageRequest Bench::GetRequest(int n, int64_t revision) {
  cpb::GetMultiCloudImageRequest req;
  req.set_name(MciName(kAccount, absl::StrCat("seed-", n), revision));
  return req;
}

tpb::ResolveLaunchRequest Bench::LaunchRequest(size_t t, int c) const {
  tpb::ResolveLaunchRequest req;
  req.set_server_template(template_names_[t]);
  req.set_cloud("clouds/" + SettingFor(c).cloud);
  return req;
}

std::vector<std::string> Bench::ResolveRequests(int64_t revision) const {
  std::vector<std::string> out;
  for (int n = 1; n <= std::min(seeded_, launch_set_); ++n) {
    for (int c = 0; c < 3; ++c) out.push_back(ResolveRequest(n, c, revision).SerializeAsString());
  }
  return out;
}

std::vector<std::string> Bench::GetRequests(int64_t revision) const {
  std::vector<std::string> out;
  for (int n = 1; n <= std::min(seeded_, launch_set_); ++n) {
    out.push_back(GetRequest(n, revision).SerializeAsString());
  }
  return out;
}

std::vector<std::string> Bench::LaunchRequests() const {
  std::vector<std::string> out;
  for (size_t t = 0; t < template_names_.size(); ++t) {
    for (int c = 0; c < 4; ++c) out.push_back(LaunchRequest(t, c).SerializeAsString());
  }
  return out;
}

std::function<void()> Bench::Refill(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                                    const std::string& method,
                                    const std::vector<std::string>& requests, int in_flight) {
  auto raw = std::make_shared<RawUnary>(cqs_.get(), channels, method, requests, bearer_,
                                        RawUnary::Order::kInOrder);
  LoadOptions options;
  options.in_flight = in_flight;
  options.warmup_s = 0;
  options.duration_s = 60;  // max_ops ends it long before
  options.max_ops = static_cast<int64_t>(requests.size());
  return [raw, options] {
    RunLoad(options, [raw](int slot, Done done) { raw->Start(slot, std::move(done)); });
  };
}

// The launch set's MCIs, each on one of the three clouds it covers.
Issue Bench::ResolveIssue(int64_t revision) {
  return RawIssue(catalog_channels_, kResolveMethod, ResolveRequests(revision));
}

Issue Bench::GetIssue(int64_t revision) {
  return RawIssue(catalog_channels_, kGetMethod, GetRequests(revision));
}

// Every template, each on one of four clouds (its default MCI `popular` covers clouds 0..3).
Issue Bench::LaunchIssue() {
  return RawIssue(templates_channels_, kLaunchMethod, LaunchRequests());
}

void Bench::Reads(const std::string& suffix) {
  std::vector<pid_t> catalog = {catalog_pid_};
  const int launch_set = std::min(seeded_, launch_set_);
  // Launches come from a hot set: resolve each (MCI, cloud, HEAD or @1) of it once, so that the
  // measured window sees the resolve cache's steady state rather than its filling.
  if (Wanted("ResolveImage")) {
    Log(absl::StrCat("warming the resolve cache: ", launch_set, " MCIs x 3 clouds x HEAD/@1"));
    auto next = std::make_shared<std::atomic<int64_t>>(0);
    LoadOptions warm;
    warm.in_flight = 32;
    warm.warmup_s = 0;
    warm.duration_s = 60;
    warm.max_ops = int64_t{launch_set} * 6;
    RunLoad(warm, [&, next](int slot, Done done) {
      int64_t k = (*next)++;
      int n = 1 + static_cast<int>(k / 6 % launch_set);
      cpb::ResolveImageRequest req;
      req.set_name(MciName(kAccount, absl::StrCat("seed-", n), k % 2));
      req.set_cloud("clouds/" + SettingFor(n + static_cast<int>(k / 2 % 3)).cloud);
      auto* stub = catalog_[static_cast<size_t>(slot) % catalog_.size()].get();
      Unary<cpb::ResolveImageRequest, cpb::ResolveImageResponse>(
          cqs_.get(), bearer_, std::move(req),
          [stub](auto* ctx, const auto& rq, auto* cq) {
            return stub->PrepareAsyncResolveImage(ctx, rq, cq);
          },
          [done](const grpc::Status& s, const cpb::ResolveImageResponse&) { done(s); });
    });
  }
  // At each concurrency the rows are measured together (Interleave), each with its echo.
  for (int in_flight : {16, 64}) {
    std::vector<Interleaved> paired;
    std::vector<Row> not_run;
    for (int64_t revision : {int64_t{0}, int64_t{1}}) {
      std::string op = revision == 0 ? "ResolveImage HEAD" : "ResolveImage @N";
      if (!Wanted(op) && !Wanted("ResolveImage")) continue;
      paired.push_back(
          EchoPaired(op + suffix, in_flight, catalog, ResolveIssue(revision), resolve_sizes_));
      if (revision == 0) {
        paired.back().prepare =
            Refill(catalog_channels_, kResolveMethod, ResolveRequests(0), in_flight);
      }
    }
    for (int64_t revision : {int64_t{0}, int64_t{1}}) {
      std::string op = revision == 0 ? "GetMultiCloudImage HEAD" : "GetMultiCloudImage @N";
      if (!Wanted(op) && !Wanted("GetMultiCloudImage")) continue;
      paired.push_back(
          EchoPaired(op + suffix, in_flight, catalog, GetIssue(revision), get_sizes_[revision]));
      if (revision == 0) {
        paired.back().prepare = Refill(catalog_channels_, kGetMethod, GetRequests(0), in_flight);
      }
    }
    if (Wanted("ResolveLaunch") && suffix.empty()) {
      if (!templates_up_ || template_names_.empty()) {
        Row row;
        row.op = "ResolveLaunch";
        row.group = "read";
        row.in_flight = in_flight;
        row.not_run = templates_down_why_.empty() ? "no templates" : templates_down_why_;
        row.target = "QPS >= 0.5x echo";
        not_run.push_back(row);
      } else {
        // The default MCI of every template is `popular`, which covers clouds 0..3.
        paired.push_back(EchoPaired("ResolveLaunch", in_flight, {catalog_pid_, templates_pid_},
                                    LaunchIssue(), launch_sizes_));
        paired.back().prepare =
            Refill(templates_channels_, kLaunchMethod, LaunchRequests(), in_flight);
      }
    }
    if (!paired.empty()) {
      std::string ops;
      for (const auto& p : paired) absl::StrAppend(&ops, ops.empty() ? "" : ", ", p.op);
      Log(absl::StrCat("measuring at ", in_flight, " in flight, in rounds: ", ops));
    }
    Interleave(&paired);
    for (Interleaved& p : paired) {
      auto [echo, row] = Finish(&p);
      row.baseline = absl::StrCat("echo@", in_flight, " (interleaved)");
      row.target = absl::StartsWith(row.op, "ResolveLaunch") ? "QPS >= 0.5x echo"
                                                             : "QPS >= 0.7x echo, p99 <= 2x echo";
      rows_.push_back(echo);
      rows_.push_back(row);
    }
    for (Row& row : not_run) rows_.push_back(row);
  }
}

Bench::OutsideRun Bench::RunOutside(const std::string& address, const std::string& method,
                                    const std::string& request, int in_flight,
                                    const std::vector<pid_t>& servers) {
  OutsideRun run;
  static int files = 0;
  std::string file = absl::StrCat(std::filesystem::temp_directory_path().string(),
                                  "/mci-bench-outside-", getpid(), "-", files++, ".bin");
  std::ofstream(file, std::ios::binary) << request;
  const double seconds = 1.0;
  std::string command = absl::StrCat(
      "'", outside_, "' --call ", method.substr(1), " --delimited --binary-file '", file,
      "' -m 'authorization=", bearer_, "' -c ", in_flight, " --connections ", channels_n_, " -z ",
      static_cast<int>(seconds * 1000), "ms --warmup 300ms ", outside_args_, " ", address, " 2>&1");
  std::string out;
  const double cpu0 = CpuSeconds(servers), client0 = ChildrenCpuSeconds();
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
    if (pclose(p) != 0) run.error = out.substr(0, 200);
  } else {
    run.error = "cannot start " + outside_;
  }
  run.server_cpu_s = CpuSeconds(servers) - cpu0;
  run.client_cpu_s = ChildrenCpuSeconds() - client0;  // the shell's and the outside client's
  std::filesystem::remove(file);
  auto number = [&out](const std::string& key) {
    size_t at = out.find("\"" + key + "\":");
    return at == std::string::npos ? -1.0 : std::atof(out.c_str() + at + key.size() + 3);
  };
  if (run.error.empty()) {
    run.r.qps = number("rps");
    run.r.ok = static_cast<int64_t>(number("count"));
    run.r.errors = static_cast<int64_t>(number("errors"));
    run.r.p50_ms = number("p50_ms");
    run.r.p99_ms = number("p99_ms");
    run.r.p999_ms = number("p999_ms");
    run.r.seconds = number("seconds");
    run.sent = number("sent");
    run.ok = run.r.qps > 0 && run.r.errors == 0;
    if (!run.ok) run.error = out.substr(0, 200);
  }
  return run;
}

void Bench::Outside() {
  // BENCH_ONLY=outside runs every outside row; "outside: ResolveLaunch" that scenario's only.
  auto wanted = [this](const std::string& op) {
    return Wanted("outside") || Wanted("outside: " + op);
  };
  if (!wanted("ResolveImage HEAD") && !wanted("GetMultiCloudImage HEAD") &&
      !wanted("ResolveLaunch")) {
    return;
  }
  outside_ = EnvString("BENCH_OUTSIDE", "");
  outside_args_ = EnvString("BENCH_OUTSIDE_ARGS", "");
  outside_perfstat_ = EnvString("BENCH_OUTSIDE_PERFSTAT", "");
  struct Scenario {
    std::string op, address;
    std::string method;   // as on the wire: "/package.Service/Method"
    std::string request;  // every request, length-delimited, for grpcload
    Sizes sizes;
    Issue issue;  // the bench client's calls of the same scenario
    std::vector<pid_t> servers;
    // The bench client's channels to the service and the requests one by one, for Refill.
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    std::vector<std::string> requests;
  };
  // The requests of the bench client's scenarios, all of them (the launch set; every template),
  // in a shuffled order the outside client cycles through.
  auto delimited = [](std::vector<std::string> messages) {
    std::shuffle(messages.begin(), messages.end(), std::mt19937{7});
    std::string out;
    for (const auto& m : messages) {
      for (uint64_t v = m.size();; v >>= 7) {
        out.push_back(static_cast<char>(v < 0x80 ? v : (v & 0x7f) | 0x80));
        if (v < 0x80) break;
      }
      out += m;
    }
    return out;
  };
  const std::vector<std::string> resolves = ResolveRequests(0), gets = GetRequests(0),
                                 launches = LaunchRequests();
  std::vector<Scenario> scenarios = {{"ResolveImage HEAD",
                                      stack_->catalog_address(),
                                      kResolveMethod,
                                      delimited(resolves),
                                      resolve_sizes_,
                                      ResolveIssue(0),
                                      {catalog_pid_},
                                      catalog_channels_,
                                      resolves},
                                     {"GetMultiCloudImage HEAD",
                                      stack_->catalog_address(),
                                      kGetMethod,
                                      delimited(gets),
                                      get_sizes_[0],
                                      GetIssue(0),
                                      {catalog_pid_},
                                      catalog_channels_,
                                      gets}};
  if (templates_up_ && !launches.empty()) {
    scenarios.push_back({"ResolveLaunch",
                         stack_->templates_address(),
                         kLaunchMethod,
                         delimited(launches),
                         launch_sizes_,
                         LaunchIssue(),
                         {catalog_pid_, templates_pid_},
                         templates_channels_,
                         launches});
  }
  // An outside row's totals: calls and seconds summed, percentiles the mean of the slices' (the
  // outside client reports no samples), the servers' CPU per call it made (its warm-up's
  // included).
  struct OutsideTotal {
    Row* row;
    double cpu_s = 0, client_cpu_s = 0, sent = 0, p50 = 0, p99 = 0, p999 = 0;
    int slices = 0;
    void Add(const OutsideRun& run) {
      row->r.ok += run.r.ok;
      row->r.errors += run.r.errors;
      row->r.seconds += run.r.seconds;
      p50 += run.r.p50_ms;
      p99 += run.r.p99_ms;
      p999 += run.r.p999_ms;
      ++slices;
      cpu_s += run.server_cpu_s;
      client_cpu_s += run.client_cpu_s;
      sent += run.sent;
    }
    void Finish() {
      row->ran = true;
      row->r.qps = row->r.seconds > 0 ? static_cast<double>(row->r.ok) / row->r.seconds : 0;
      if (slices > 0) {
        row->r.p50_ms = p50 / slices;
        row->r.p99_ms = p99 / slices;
        row->r.p999_ms = p999 / slices;
      }
      if (sent > 0) row->server_cpu_us = cpu_s / sent * 1e6;
      if (sent > 0) row->client_cpu_us = client_cpu_s / sent * 1e6;
    }
  };
  // One outside row being measured: its scenario, its two rows and what their slices add up to.
  struct Measuring {
    const Scenario* sc;
    Row echo, row;
    std::string echo_bytes, perfstat, error;
    std::function<void()> refill;  // before each visit: every outside row reads HEAD answers
    OutsideTotal echo_total{nullptr}, total{nullptr};
    Pairs own;                  // the bench client's echo and scenario slices
    SlicePairs outside_slices;  // the outside client's
  };
  // A slice of an outside row: the bench client's (its echo or the scenario), then the outside
  // client's of the same.
  struct OutsideSlice {
    Row own;
    OutsideRun outside;
  };
  // Each client's slice ends its perfstat block with a line naming the client and its rate
  // (bench/perfstat_summary.py reads them).
  auto mark = [](const std::string& perfstat, const std::string& client, double qps,
                 const std::string& more) {
    if (perfstat.empty()) return;
    std::ofstream(perfstat, std::ios::app)
        << "## " << client << " client: " << Fixed(qps, 0) << " calls/s" << more << "\n";
  };
  for (int in_flight : {16, 64}) {
    std::vector<Measuring> rows;
    rows.reserve(scenarios.size());  // the totals point into them
    for (const Scenario& sc : scenarios) {
      if (!wanted(sc.op)) continue;
      Measuring& m = rows.emplace_back();
      m.sc = &sc;
      m.echo.op = absl::StrCat("outside: echo (with ", sc.op, ")");
      m.echo.group = "outside-echo";
      m.row.op = "outside: " + sc.op;
      m.row.group = "outside";
      m.echo.in_flight = m.row.in_flight = in_flight;
      m.row.floor = sc.op == "ResolveLaunch" ? 0.5 : 0.7;
      m.row.target = absl::StrCat(
          "QPS within 15% of the bench client's (or of its own echo's; median of the slices), "
          "same verdict at >= ",
          Fixed(m.row.floor, 1), "x echo");
      if (outside_.empty()) {
        m.error =
            "no outside client (BENCH_OUTSIDE; make bench builds bench/outside/grpcload "
            "when make deps has installed Go's gRPC)";
      }
      epb::EchoRequest echo_req;
      echo_req.set_payload(std::string(sc.sizes.request, 'r'));
      echo_req.set_response_bytes(static_cast<int>(sc.sizes.response));
      m.echo_bytes = delimited({echo_req.SerializeAsString()});
      m.refill = Refill(sc.channels, sc.method, sc.requests, in_flight);
      if (!outside_perfstat_.empty()) {
        m.perfstat = absl::StrCat(results_dir_, "/perfstat-",
                                  absl::StrReplaceAll(sc.op, {{" ", "_"}}), "-", in_flight, ".txt");
      }
    }
    std::vector<std::string> keys;
    std::string ops;
    for (Measuring& m : rows) {
      m.echo_total.row = &m.echo;
      m.total.row = &m.row;
      keys.push_back(m.sc->op);
      absl::StrAppend(&ops, ops.empty() ? "" : ", ", m.sc->op);
    }
    if (!outside_.empty() && !rows.empty()) {
      Log(absl::StrCat("measuring at ", in_flight,
                       " in flight with the outside client, in rounds: ", ops));
    }
    // Side by side with the bench client, in slices of a second: its echo, the outside echo, its
    // scenario, the outside scenario, both echoes again; and the rows in rounds, as the bench
    // client's read rows (Interleave). Each client's ratio is the median of its own slices'
    // (each over its echo slices around it), so the machine's drift from second to second
    // touches both alike. QPS over all of a row's slices; the outside rows' percentiles are the
    // mean of their slices'.
    const int rounds = std::max(1, static_cast<int>(std::lround(seconds_)));
    const SliceTiming saved(this);  // until this concurrency's rows are done
    seconds_ = 1;
    warmup_ = 0.2;
    MeasureInRounds<OutsideSlice>(
        keys, rounds,
        [&](size_t i) {
          if (rows[i].error.empty()) rows[i].refill();
        },
        [&](size_t i, bool base) {
          Measuring& m = rows[i];
          OutsideSlice slice;
          if (!m.error.empty()) return slice;
          const Scenario& sc = *m.sc;
          if (base) {
            slice.own = Measure("echo", "echo", in_flight, {echo_pid_},
                                EchoIssue(sc.sizes.request, sc.sizes.response));
            slice.outside =
                RunOutside(echo_address_, kEchoMethod, m.echo_bytes, in_flight, {echo_pid_});
          } else {
            {
              PerfStat stat(sc.servers, m.perfstat, outside_perfstat_);
              slice.own = Measure(sc.op, "read", in_flight, sc.servers, sc.issue);
            }
            mark(m.perfstat, "bench", slice.own.r.qps, "");
            {
              PerfStat stat(sc.servers, m.perfstat, outside_perfstat_);
              slice.outside = RunOutside(sc.address, sc.method, sc.request, in_flight, sc.servers);
            }
            mark(m.perfstat, "outside", slice.outside.r.qps,
                 absl::StrCat(", ", static_cast<int64_t>(slice.outside.sent), " sent"));
          }
          // The outside client's process gone before the bench client's next slice.
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          return slice;
        },
        [&](size_t i, bool base, const OutsideSlice& slice) {
          Measuring& m = rows[i];
          if (!m.error.empty()) return;
          if (!slice.outside.ok) {
            m.error = "outside client failed: " + slice.outside.error;
            return;
          }
          if (base) {
            m.own.AddBase(slice.own);
            m.outside_slices.AddBase(slice.outside.r.qps);
            m.echo_total.Add(slice.outside);
          } else {
            m.own.AddRow(slice.own);
            m.outside_slices.AddRow(slice.outside.r.qps);
            m.total.Add(slice.outside);
          }
        });
    for (Measuring& m : rows) {
      Row& row = m.row;
      Row& echo = m.echo;
      if (!m.error.empty()) {
        echo.not_run = row.not_run = m.error;
        rows_.push_back(echo);
        rows_.push_back(row);
        continue;
      }
      row.slice_qps = m.outside_slices.row();
      row.baseline_slice_qps = m.outside_slices.base();
      row.slice_baseline_qps = m.outside_slices.Around();
      row.slice_ratios = m.outside_slices.Ratios();
      // The outside client's rate over the bench client's side by side, or over its own echo's
      // where that is lower.
      const std::vector<double>& echo_around = row.slice_baseline_qps;
      for (size_t i = 0; i < row.slice_qps.size() && i < m.own.qps.row().size(); ++i) {
        const double expected = std::min(m.own.qps.row()[i], echo_around[i]);
        if (expected > 0) row.slice_rate_ratios.push_back(row.slice_qps[i] / expected);
      }
      row.peer_qps = m.own.row.r.qps;
      row.peer_slice_ratios = m.own.qps.Ratios();
      row.peer_cpu_us = m.own.row.server_cpu_us;
      row.peer_client_cpu_us = m.own.row.client_cpu_us;
      m.echo_total.Finish();
      m.total.Finish();
      row.baseline = absl::StrCat("outside: echo@", in_flight, " (interleaved)");
      row.baseline_qps = echo.r.qps;
      row.baseline_p50 = echo.r.p50_ms;
      row.baseline_p99 = echo.r.p99_ms;
      rows_.push_back(echo);
      rows_.push_back(row);
    }
  }
}

void Bench::Lists(const std::string& suffix) {
  const int in_flight = 16;
  std::vector<pid_t> catalog = {catalog_pid_};
  std::vector<Interleaved> paired;
  std::vector<Row> not_run;
  if (Wanted("ListMultiCloudImages")) {
    // A real first page's token, with its cursor moved to 60 rows before the end: a deep page.
    cpb::ListMultiCloudImagesRequest first;
    first.set_parent(absl::StrCat("accounts/", kAccount));
    first.set_page_size(50);
    cpb::ListMultiCloudImagesResponse page;
    auto ctx = SyncContext(bearer_);
    grpc::Status s = catalog_[0]->ListMultiCloudImages(ctx.get(), first, &page);
    std::string deep_token;
    if (s.ok() && !page.next_page_token().empty()) {
      std::string raw;
      absl::WebSafeBase64Unescape(page.next_page_token(), &raw);
      raw = absl::StrCat(raw.substr(0, raw.rfind('|') + 1), max_seed_row_id_ - 60);
      deep_token = absl::WebSafeBase64Escape(raw);
    }
    auto list = [&](const cpb::ListMultiCloudImagesRequest& req) -> Issue {
      return [this, req](int slot, Done done) {
        auto* stub = catalog_[static_cast<size_t>(slot) % catalog_.size()].get();
        Unary<cpb::ListMultiCloudImagesRequest, cpb::ListMultiCloudImagesResponse>(
            cqs_.get(), bearer_, req,
            [stub](auto* ctx, const auto& rq, auto* cq) {
              return stub->PrepareAsyncListMultiCloudImages(ctx, rq, cq);
            },
            [done](const grpc::Status& s, const cpb::ListMultiCloudImagesResponse& r) {
              done(s.ok() && r.multi_cloud_images_size() != 50
                       ? grpc::Status(grpc::StatusCode::INTERNAL, "short page")
                       : s);
            });
      };
    };
    cpb::ListMultiCloudImagesRequest deep = first;
    deep.set_page_token(deep_token);
    paired.push_back(
        Pair({"ListMultiCloudImages first page" + suffix, "list", catalog, list(first)},
             {"ListMultiCloudImages deep page" + suffix, "list", catalog, list(deep)}, in_flight,
             "ListMultiCloudImages"));
  }
  if (Wanted("ListMultiCloudImageUsages") && (!templates_up_ || template_names_.empty())) {
    Row row;
    row.op = "ListMultiCloudImageUsages" + suffix;
    row.group = "list";
    row.in_flight = in_flight;
    row.not_run = templates_down_why_.empty() ? "no templates" : templates_down_why_;
    not_run.push_back(row);
  } else if (Wanted("ListMultiCloudImageUsages")) {
    tpb::ListMultiCloudImageUsagesRequest first;
    first.set_multi_cloud_image(popular_);
    first.set_page_size(50);
    // Walk to the last full page once to have a deep page's token.
    std::string token, deep_token;
    for (int i = 0; i < 100000; ++i) {
      tpb::ListMultiCloudImageUsagesRequest req = first;
      req.set_page_token(token);
      tpb::ListMultiCloudImageUsagesResponse page;
      auto ctx = SyncContext(bearer_);
      if (!templates_[0]->ListMultiCloudImageUsages(ctx.get(), req, &page).ok()) break;
      if (page.next_page_token().empty() || page.usages_size() < 50) break;
      deep_token = token;
      token = page.next_page_token();
    }
    auto usages = [&](const tpb::ListMultiCloudImageUsagesRequest& req) -> Issue {
      return [this, req](int slot, Done done) {
        auto* stub = templates_[static_cast<size_t>(slot) % templates_.size()].get();
        Unary<tpb::ListMultiCloudImageUsagesRequest, tpb::ListMultiCloudImageUsagesResponse>(
            cqs_.get(), bearer_, req,
            [stub](auto* ctx, const auto& rq, auto* cq) {
              return stub->PrepareAsyncListMultiCloudImageUsages(ctx, rq, cq);
            },
            [done](const grpc::Status& s, const tpb::ListMultiCloudImageUsagesResponse&) {
              done(s);
            });
      };
    };
    tpb::ListMultiCloudImageUsagesRequest deep = first;
    deep.set_page_token(deep_token);
    const std::vector<pid_t> templates = {templates_pid_};
    paired.push_back(
        Pair({"ListMultiCloudImageUsages first page" + suffix, "list", templates, usages(first)},
             {"ListMultiCloudImageUsages deep page" + suffix, "list", templates, usages(deep)},
             in_flight, "ListMultiCloudImageUsages"));
  }
  // Each first page and its deep page in slices side by side, so that the machine's drift over
  // seconds touches both alike, and the two lists' rows in rounds (Interleave).
  Interleave(&paired);
  for (Interleaved& p : paired) {
    auto [first_row, deep_row] = Finish(&p);
    first_row.target = "-";
    deep_row.target = "deep within 2x of first";
    rows_.push_back(first_row);
    rows_.push_back(deep_row);
  }
  for (Row& row : not_run) rows_.push_back(row);
}

// The write path of Create + 3 settings + Commit as one chained operation.
struct CreateFlow : std::enable_shared_from_this<CreateFlow> {
  cpb::CatalogService::Stub* stub;
  CompletionQueues* cqs;
  std::string bearer, parent, id, name;
  std::vector<Setting> settings;
  Done done;

  void Step(int k) {
    auto self = shared_from_this();
    if (k == 0) {
      cpb::CreateMultiCloudImageRequest req;
      req.set_parent(parent);
      req.set_multi_cloud_image_id(id);
      req.mutable_multi_cloud_image()->set_display_name("Bench " + id);
      req.mutable_multi_cloud_image()->add_tags(kAgentTag);
      Unary<cpb::CreateMultiCloudImageRequest, cpb::MultiCloudImage>(
          cqs, bearer, std::move(req),
          [this](auto* ctx, const auto& rq, auto* cq) {
            return stub->PrepareAsyncCreateMultiCloudImage(ctx, rq, cq);
          },
          [self](const grpc::Status& s, const cpb::MultiCloudImage& m) {
            if (!s.ok()) return self->done(s);
            self->name = m.name();
            self->Step(1);
          });
    } else if (k <= static_cast<int>(settings.size())) {
      const Setting& st = settings[static_cast<size_t>(k - 1)];
      cpb::CreateMultiCloudImageSettingRequest req;
      req.set_parent(name);
      req.mutable_setting()->set_cloud("clouds/" + st.cloud);
      req.mutable_setting()->set_image("clouds/" + st.cloud + "/images/" + st.image);
      req.mutable_setting()->set_instance_type("clouds/" + st.cloud + "/instanceTypes/" + st.type);
      Unary<cpb::CreateMultiCloudImageSettingRequest, cpb::MultiCloudImageSetting>(
          cqs, bearer, std::move(req),
          [this](auto* ctx, const auto& rq, auto* cq) {
            return stub->PrepareAsyncCreateMultiCloudImageSetting(ctx, rq, cq);
          },
          [self, k](const grpc::Status& s, const cpb::MultiCloudImageSetting&) {
            if (!s.ok()) return self->done(s);
            self->Step(k + 1);
          });
    } else {
      cpb::CommitMultiCloudImageRequest req;
      req.set_name(name);
      req.set_message("bench");
      Unary<cpb::CommitMultiCloudImageRequest, cpb::MultiCloudImage>(
          cqs, bearer, std::move(req),
          [this](auto* ctx, const auto& rq, auto* cq) {
            return stub->PrepareAsyncCommitMultiCloudImage(ctx, rq, cq);
          },
          [self](const grpc::Status& s, const cpb::MultiCloudImage&) { self->done(s); });
    }
  }
};

// A write scenario paired with pgbench running the same statements, for Interleave: checkpoints,
// autovacuum and other load drift over seconds, as for reads.
Interleaved Bench::WritePaired(const std::string& op, const std::vector<pid_t>& servers,
                               const Issue& issue, const std::string& base_op,
                               const std::string& database, const std::string& script,
                               const std::vector<std::string>& defines) {
  const int in_flight = 8;
  Interleaved paired;
  paired.op = op;
  paired.base_op = paired.key = base_op;
  paired.base = [=] { return Pgbench(base_op, database, script, defines, in_flight); };
  paired.row = [=] { return Measure(op, "write", in_flight, servers, issue); };
  return paired;
}

void Bench::Writes() {
  std::vector<std::string> common = {"tags=" + std::string(kAgentTag), PgbenchPayload()};
  std::vector<Interleaved> paired;
  std::vector<Row> not_run;
  if (Wanted("Create")) {
    std::vector<std::string> defines = common;
    defines.push_back("acct=pgbench");
    for (int i = 0; i < 3; ++i) {
      Setting st = SettingFor(i);
      defines.push_back(absl::StrCat("c", i + 1, "=", st.cloud));
      defines.push_back(absl::StrCat("i", i + 1, "=", st.image));
      defines.push_back(absl::StrCat("t", i + 1, "=", st.type));
    }
    paired.push_back(WritePaired(
        "Create+3 settings+Commit", {catalog_pid_},
        [&](int slot, Done done) {
          auto flow = std::make_shared<CreateFlow>();
          flow->stub = catalog_[static_cast<size_t>(slot) % catalog_.size()].get();
          flow->cqs = cqs_.get();
          flow->bearer = bearer_;
          flow->parent = absl::StrCat("accounts/", kAccount);
          flow->id = absl::StrCat("w-", counter_++);
          for (int i = 0; i < 3; ++i) flow->settings.push_back(SettingFor(i));
          flow->done = std::move(done);
          flow->Step(0);
        },
        "pgbench Create+3 settings+Commit", "catalog",
        std::string(MCI_BENCH_DIR) + "/pgbench/create_flow.sql", defines));
  }
  if (Wanted("Clone")) {
    const int sources = WriteSeeds();
    std::vector<std::string> defines = common;
    defines.push_back("acct=pgbench");
    defines.push_back(std::string("src_acct=") + kAccount);
    defines.push_back(absl::StrCat("nseed=", sources));
    paired.push_back(WritePaired(
        "CloneMultiCloudImage", {catalog_pid_},
        [&, sources](int slot, Done done) {
          thread_local std::mt19937 rng{std::random_device{}()};
          cpb::CloneMultiCloudImageRequest req;
          req.set_name(MciName(
              kAccount, absl::StrCat("seed-", 1 + rng() % static_cast<unsigned>(sources)), 1));
          req.set_multi_cloud_image_id(absl::StrCat("c-", counter_++));
          auto* stub = catalog_[static_cast<size_t>(slot) % catalog_.size()].get();
          Unary<cpb::CloneMultiCloudImageRequest, cpb::MultiCloudImage>(
              cqs_.get(), bearer_, std::move(req),
              [stub](auto* ctx, const auto& rq, auto* cq) {
                return stub->PrepareAsyncCloneMultiCloudImage(ctx, rq, cq);
              },
              [done](const grpc::Status& s, const cpb::MultiCloudImage&) { done(s); });
        },
        "pgbench Clone", "catalog", std::string(MCI_BENCH_DIR) + "/pgbench/clone.sql", defines));
  }
  if (Wanted("AddMultiCloudImage") && (!templates_up_ || template_names_.empty())) {
    Row row;
    row.op = "AddMultiCloudImage";
    row.group = "write";
    row.in_flight = 8;
    row.not_run = templates_down_why_.empty() ? "no templates" : templates_down_why_;
    not_run.push_back(row);
  } else if (Wanted("AddMultiCloudImage")) {
    // References to committed revisions of MCIs the replica knows (the seeded ones: SeedReplica),
    // each (template, MCI) pair once. Not the MCIs the write scenarios above just created: how
    // many of those the replica has heard of yet depends on how far behind their events are, and
    // each one it has not costs the catalog calls that pgbench's script does not make.
    std::vector<std::string> mcis;
    for (int i = 1; i <= WriteSeeds(); ++i) {
      mcis.push_back(MciName(kAccount, absl::StrCat("seed-", i), 1));
    }
    auto next = std::make_shared<std::atomic<size_t>>(0);
    paired.push_back(WritePaired(
        "AddMultiCloudImage", {templates_pid_, catalog_pid_},
        [&, mcis, next](int slot, Done done) {
          size_t k = (*next)++;
          tpb::AddMultiCloudImageRequest req;
          req.set_server_template(template_names_[k % template_names_.size()]);
          req.set_multi_cloud_image(mcis[(k / template_names_.size() * 7 + k) % mcis.size()]);
          auto* stub = templates_[static_cast<size_t>(slot) % templates_.size()].get();
          Unary<tpb::AddMultiCloudImageRequest, tpb::ServerTemplate>(
              cqs_.get(), bearer_, std::move(req),
              [stub](auto* ctx, const auto& rq, auto* cq) {
                return stub->PrepareAsyncAddMultiCloudImage(ctx, rq, cq);
              },
              [done](const grpc::Status& s, const tpb::ServerTemplate&) { done(s); });
        },
        "pgbench AddMultiCloudImage", "templates",
        std::string(MCI_BENCH_DIR) + "/pgbench/add_reference.sql",
        {std::string("acct=") + kAccount, absl::StrCat("ntemplates=", templates_n_),
         "mci=" + popular_}));
  }
  // The three in rounds (Interleave), in slices of a second whatever BENCH_SLICE (pgbench -T
  // counts whole seconds).
  Interleave(&paired, 1.0);
  for (Interleaved& p : paired) {
    auto [base, row] = Finish(&p);
    row.target = "QPS >= 0.5x pgbench";
    rows_.push_back(base);
    rows_.push_back(row);
  }
  for (Row& row : not_run) rows_.push_back(row);
}

Row Bench::Pgbench(const std::string& op, const std::string& database, const std::string& script,
                   const std::vector<std::string>& defines, int clients, double seconds) {
  if (seconds <= 0) seconds = seconds_;
  Row row;
  row.op = op;
  row.group = "baseline";
  row.in_flight = clients;
  std::string dir = mci::testing::TempDir() + "/pgbench-" + std::to_string(counter_++);
  std::filesystem::create_directories(dir);
  std::string cmd =
      absl::StrCat("cd ", dir, " && pgbench -n -M prepared -c ", clients, " -j 2 -T ",
                   static_cast<int>(std::ceil(seconds)), " -h 127.0.0.1 -p ",
                   stack_->postgres().port(), " -U postgres -l --log-prefix=tx -f ", script);
  for (const auto& d : defines) absl::StrAppend(&cmd, " -D '", d, "'");
  absl::StrAppend(&cmd, " ", database, " 2>&1");
  if (warmup_ >= 0.5) Log(absl::StrCat("running ", op, " with ", clients, " clients"));
  double pg0 = PgCpu();
  const double steal0 = StealSeconds();
  const absl::Time began = absl::Now();
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (p != nullptr) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    int rc = pclose(p);
    if (rc != 0) {
      row.not_run = "pgbench failed: " + out.substr(0, 300);
      Log(row.not_run);
      return row;
    }
  }
  double pg1 = PgCpu();
  row.steal_share =
      (StealSeconds() - steal0) / (absl::ToDoubleSeconds(absl::Now() - began) * Cpus());
  // Per-transaction log lines: client_id transaction_no time_us script_no epoch_s epoch_us.
  std::vector<double> ms;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream f(line);
      long client, tx;
      double us;
      if (f >> client >> tx >> us) ms.push_back(us / 1000.0);
    }
  }
  size_t tps_at = out.find("tps = ");
  row.ran = tps_at != std::string::npos;
  if (!row.ran) {
    row.not_run = "pgbench printed no tps: " + out.substr(0, 300);
    return row;
  }
  row.r.qps = std::atof(out.c_str() + tps_at + 6);
  row.r.ok = static_cast<int64_t>(ms.size());
  // The time the logged transactions took at pgbench's own rate (which leaves out connecting),
  // so that merged slices weigh pgbench as it reports itself.
  row.r.seconds = row.r.qps > 0 && !ms.empty() ? static_cast<double>(ms.size()) / row.r.qps
                                               : std::ceil(seconds);
  if (!ms.empty()) {
    row.r.p50_ms = Percentile(ms, 0.5);
    row.r.p99_ms = Percentile(ms, 0.99);
    row.r.p999_ms = Percentile(ms, 0.999);
  }
  if (!ms.empty()) row.pg_cpu_us = (pg1 - pg0) / static_cast<double>(ms.size()) * 1e6;
  row.r.samples = std::move(ms);
  std::filesystem::remove_all(dir);
  return row;
}

// Before a latency measurement: what the earlier scenarios left to do is done first, as pgbench
// vacuums before it measures. VACUUM ANALYZE of the services' databases (the write scenarios and
// pgbench leave tens of thousands of dead rows, whose autovacuum would otherwise run inside the
// window) and a CHECKPOINT; then a second for the consumers' backlogs.
void Bench::Settle() {
  for (const char* db : {"catalog", "templates", "marketplace"}) {
    try {
      pqxx::connection conn(stack_->postgres().Url(db));
      pqxx::nontransaction txn(conn);
      txn.exec("VACUUM (ANALYZE)");
      txn.exec("CHECKPOINT");
    } catch (const std::exception& e) {
      Log(absl::StrCat("settling ", db, ": ", e.what()));
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
}

std::uintmax_t FileSize(const std::string& path) {
  std::error_code ec;
  const std::uintmax_t size = path.empty() ? 0 : std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

// The value of "key":"value" in a JSON log line (-1 when absent).
double LogNumber(const std::string& line, const std::string& key) {
  const std::string quoted = "\"" + key + "\":\"";
  const size_t at = line.find(quoted);
  return at == std::string::npos ? -1 : std::atof(line.c_str() + at + quoted.size());
}

// The outbox relay's "slow batch" warnings written to the catalog's log after `from`: how many,
// and the slowest three's parts (the oldest event's wait before the read, the read, the publish).
std::string SlowRelayBatches(const std::string& path, std::uintmax_t from) {
  if (path.empty()) return "";
  std::ifstream in(path);
  in.seekg(static_cast<std::streamoff>(from));
  struct Batch {
    double total, waited, read, publish;
    int events;
  };
  std::vector<Batch> batches;
  for (std::string line; std::getline(in, line);) {
    if (line.find("outbox relay: slow batch") == std::string::npos) continue;
    Batch b{0, std::max(0.0, LogNumber(line, "waited_ms")), LogNumber(line, "read_ms"),
            LogNumber(line, "publish_ms"), static_cast<int>(LogNumber(line, "events"))};
    b.total = b.waited + b.read + b.publish;
    batches.push_back(b);
  }
  if (batches.empty()) return "";
  std::sort(batches.begin(), batches.end(),
            [](const Batch& a, const Batch& b) { return a.total > b.total; });
  std::string out = absl::StrCat("the relay logged ", batches.size(),
                                 " slow batches (waited before the read / read / publish, ms):");
  for (size_t i = 0; i < batches.size() && i < 3; ++i) {
    const Batch& b = batches[i];
    absl::StrAppend(&out, i ? "," : "", " ", Fixed(b.waited, 1), "/", Fixed(b.read, 1), "/",
                    Fixed(b.publish, 1), " (", b.events, " events)");
  }
  return out;
}

// Catalog commit -> the template-reference replica shows it (the MCI's HEAD clouds in its
// mci_replica row, which GetServerTemplate and the usages report use): from the commit time of
// the catalog's transaction to that of the consumer's, as PostgreSQL recorded them.
void Bench::Events() {
  if (!Wanted("event")) return;
  for (bool loaded : {false, true}) {
    Settle();
    Row row;
    row.op = loaded ? "event commit->replica @1000 writes/s" : "event commit->replica idle";
    row.group = "event";
    row.in_flight = 1;
    row.target = loaded ? "p99 <= 100 ms" : "p99 <= 10 ms";
    if (!templates_up_ || prop_template_.empty()) {
      row.not_run = templates_down_why_.empty() ? "no templates" : templates_down_why_;
      rows_.push_back(row);
      continue;
    }
    Log("measuring " + row.op);
    // What PostgreSQL alone commits of the loaded window's writes on this machine: the ceiling
    // the 1,000 writes/s are measured against (change 48).
    Row ceiling;
    if (loaded) {
      const std::vector<std::string> defines = {
          std::string("acct=") + kAccount, absl::StrCat("nseed=", WriteSeeds()), PgbenchPayload()};
      ceiling = Pgbench("pgbench UpdateMultiCloudImage", "catalog",
                        std::string(MCI_BENCH_DIR) + "/pgbench/update.sql", defines, 8, 4);
      rows_.push_back(ceiling);
      Settle();
    }
    std::unique_ptr<PacedLoad> load;
    // Each background write's reply time: a slow flush shows in them as in the relay's waits.
    struct {
      std::mutex mu;
      std::vector<double> ms;
    } writes;
    if (loaded) {
      // Background writes: UpdateMultiCloudImage (one transaction, one event each) on seeded MCIs.
      const int span = WriteSeeds();
      load = std::make_unique<PacedLoad>(1000, 64, [this, span, w = &writes](int slot, Done done) {
        int64_t k = counter_++;
        cpb::UpdateMultiCloudImageRequest req;
        req.mutable_multi_cloud_image()->set_name(
            MciName(kAccount, absl::StrCat("seed-", 1 + k % span)));
        req.mutable_multi_cloud_image()->set_display_name(absl::StrCat("Seed v", k));
        req.mutable_update_mask()->add_paths("display_name");
        auto* stub = catalog_[static_cast<size_t>(slot) % catalog_.size()].get();
        Unary<cpb::UpdateMultiCloudImageRequest, cpb::MultiCloudImage>(
            cqs_.get(), bearer_, std::move(req),
            [stub](auto* ctx, const auto& rq, auto* cq) {
              return stub->PrepareAsyncUpdateMultiCloudImage(ctx, rq, cq);
            },
            [done, w, issued = Clock::now()](const grpc::Status& s, const cpb::MultiCloudImage&) {
              const double took =
                  std::chrono::duration<double, std::milli>(Clock::now() - issued).count();
              {
                std::lock_guard<std::mutex> lock(w->mu);
                w->ms.push_back(took);
              }
              done(s);
            });
      });
      load->Start();
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
    // The catalog's part alone: the event on the JetStream stream's subject (a plain NATS
    // subscription sees each message as JetStream stores it).
    natsConnection* nc = nullptr;
    natsSubscription* sub = nullptr;
    if (natsConnection_ConnectTo(&nc, stack_->nats().Url().c_str()) != NATS_OK ||
        natsConnection_SubscribeSync(&sub, nc, "mci.v1.events.settings_changed") != NATS_OK) {
      sub = nullptr;
    }
    std::vector<double> js_ms;
    // Each side's commit time is PostgreSQL's own (track_commit_timestamp, on in the bench's
    // cluster): the catalog's transaction that changed the MCI and the consumer's that changed
    // its replica row, both in microseconds since the epoch by the same clock.
#define COMMITTED_US " floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::int8"
    pqxx::connection replica(stack_->postgres().Url("templates"));
    replica.prepare("replica_has", "SELECT $2 = ANY(head_clouds)," COMMITTED_US
                                   " FROM mci_replica WHERE mci = $1");
    pqxx::connection catalog_db(stack_->postgres().Url("catalog"));
    catalog_db.prepare("mci_committed",
                       "SELECT" COMMITTED_US " FROM mcis WHERE account = $1 AND mci_id = $2");
#undef COMMITTED_US
    auto micros_now = [] {
      return std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
    // What the bench itself saw: from the catalog's reply to the poll that read the change.
    std::vector<double> seen_ms;
    // The catalog's commit to its reply reaching the bench (the flush, the handler's return).
    std::vector<double> reply_ms;
    const Setting st = SettingFor(prop_cloud_);
    const std::string cloud = "clouds/" + st.cloud;
    const std::string setting_name = prop_mci_ + "/settings/" + st.cloud;
    std::vector<double> ms;
    // Each sample's total, its JetStream part (-1: not seen there) and its index, for the slowest.
    std::vector<std::tuple<double, double, size_t>> slowest;
    // Each sample's span, from the catalog's commit to the replica's (wall-clock microseconds).
    std::vector<std::pair<int64_t, int64_t>> spans;
    int timeouts = 0;
    std::string error;
    // 600 samples: a p99 from six of them, not three (at most 30 s at the default length).
    absl::Time end = absl::Now() + absl::Seconds(std::max(10.0, seconds_ * 6));
    // Whether the machine itself stalled within a sample, as it does now and then even idle
    // (docs/performance-history.md, change 44); and the relay's slow batches meanwhile,
    // from the catalog's log.
    StallProbe probe;
    const std::string catalog_log = stack_->catalog() ? stack_->catalog()->log_path() : "";
    const std::uintmax_t log_from = FileSize(catalog_log);
    const std::chrono::milliseconds poll(loaded ? 5 : 1);
    for (int i = 0; i < 600 && absl::Now() < end; ++i) {
      // Toggle the setting for `cloud`: present after a create, absent after a delete.
      bool add = i % 2 == 0;
      for (natsMsg* m = nullptr; sub != nullptr && natsSubscription_NextMsg(&m, sub, 0) == NATS_OK;
           m = nullptr) {
        natsMsg_Destroy(m);
      }
      grpc::Status s;
      if (add) {
        cpb::CreateMultiCloudImageSettingRequest req;
        req.set_parent(prop_mci_);
        req.mutable_setting()->set_cloud(cloud);
        req.mutable_setting()->set_image(cloud + "/images/" + st.image);
        req.mutable_setting()->set_instance_type(cloud + "/instanceTypes/" + st.type);
        cpb::MultiCloudImageSetting out;
        auto ctx = SyncContext(bearer_);
        s = catalog_[0]->CreateMultiCloudImageSetting(ctx.get(), req, &out);
      } else {
        cpb::DeleteMultiCloudImageSettingRequest req;
        req.set_name(setting_name);
        google::protobuf::Empty out;
        auto ctx = SyncContext(bearer_);
        s = catalog_[0]->DeleteMultiCloudImageSetting(ctx.get(), req, &out);
      }
      Clock::time_point committed = Clock::now();
      const int64_t reply_us = micros_now();
      if (!s.ok()) {
        error = s.error_message();
        if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS ||
            s.error_code() == grpc::StatusCode::NOT_FOUND) {
          continue;  // out of step with a previous timeout: the next toggle fixes it
        }
        break;
      }
      Clock::time_point give_up = committed + std::chrono::seconds(5);
      double js_this = -1;
      int64_t js_seen_us = 0;
      while (sub != nullptr && Clock::now() < give_up) {
        natsMsg* m = nullptr;
        if (natsSubscription_NextMsg(&m, sub, 100) != NATS_OK) continue;
        mci::events::v1::MultiCloudImageEvent event;
        bool ours = event.ParseFromArray(natsMsg_GetData(m), natsMsg_GetDataLength(m)) &&
                    event.multi_cloud_image() == prop_mci_;
        natsMsg_Destroy(m);
        if (ours) {
          js_seen_us = micros_now();
          break;
        }
      }
      bool seen = false;
      int64_t replica_us = 0;
      while (Clock::now() < give_up) {
        // The replica row itself, one prepared point read per poll: polling through
        // GetServerTemplate (four statements) every millisecond was itself a good part of the load
        // under which it measured. The poll's rate no longer bounds the figure (the commit times
        // do), only how soon the next sample starts: every 1 ms idle, where every 0.2 ms was the
        // bench's own 5,000 statements/s competing for the two cores with what it measured; every
        // 5 ms under load, where the machine has no CPU to spare (change 48).
        try {
          pqxx::nontransaction n(replica);
          pqxx::result r = n.exec_prepared("replica_has", prop_mci_, cloud);
          seen = !r.empty() && r[0][0].as<bool>() == add;
          if (seen) replica_us = r[0][1].as<int64_t>();
        } catch (const std::exception& e) {
          error = e.what();
        }
        if (seen) break;
        std::this_thread::sleep_for(poll);
      }
      if (!seen) {
        ++timeouts;
        continue;
      }
      seen_ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - committed).count());
      int64_t catalog_us = 0;
      try {
        pqxx::nontransaction n(catalog_db);
        pqxx::result r = n.exec_prepared("mci_committed", kAccount, "propagation");
        if (!r.empty()) catalog_us = r[0][0].as<int64_t>();
      } catch (const std::exception& e) {
        error = e.what();
      }
      if (catalog_us <= 0 || replica_us < catalog_us) {
        error = absl::StrCat("commit times out of order (catalog ", catalog_us, ", replica ",
                             replica_us, " µs)");
        break;
      }
      ms.push_back(static_cast<double>(replica_us - catalog_us) / 1000);
      reply_ms.push_back(static_cast<double>(reply_us - catalog_us) / 1000);
      if (js_seen_us > 0) js_this = static_cast<double>(js_seen_us - catalog_us) / 1000;
      if (js_this >= 0) js_ms.push_back(js_this);
      slowest.push_back({ms.back(), js_this, spans.size()});
      spans.push_back({catalog_us, replica_us});
      std::this_thread::sleep_for(std::chrono::milliseconds(loaded ? 5 : 20));
    }
    probe.Stop();
    const std::string relay_slow = SlowRelayBatches(catalog_log, log_from);
    if (sub != nullptr) natsSubscription_Destroy(sub);
    if (nc != nullptr) natsConnection_Destroy(nc);
    const std::vector<Stall> stalls = probe.stalls();
    std::vector<double> stalled_ms(spans.size()), others;
    row.stalls.measured = true;
    row.stalls.realtime = probe.realtime();
    row.stalls.count = static_cast<int>(stalls.size());
    row.stalls.watched_s = probe.watched_seconds();
    for (const Stall& st : stalls) {
      const double span_ms = static_cast<double>(st.to_us - st.from_us) / 1000;
      row.stalls.longest_ms = std::max(row.stalls.longest_ms, span_ms);
      row.stalls.total_ms += span_ms;
    }
    for (size_t k = 0; k < spans.size(); ++k) {
      stalled_ms[k] =
          static_cast<double>(StalledWithin(stalls, spans[k].first, spans[k].second)) / 1000;
      if (stalled_ms[k] > 0) {
        ++row.stalls.stalled_samples;
      } else {
        others.push_back(ms[k]);
      }
    }
    if (!others.empty()) row.stalls.p99_others_ms = Percentile(others, 0.99);
    row.steal_share = probe.steal_share();
    {
      Row js;
      js.op = absl::StrCat(loaded ? "event commit->JetStream @1000 writes/s"
                                  : "event commit->JetStream idle");
      js.group = "event";
      js.in_flight = 1;
      js.note =
          "the catalog's part (outbox relay): its commit to the event's arrival on a NATS "
          "subscription of the bench's; no target of its own";
      if (!reply_ms.empty()) {
        absl::StrAppend(&js.note, "; the reply reached the bench p50 ",
                        Fixed(Percentile(reply_ms, 0.5), 2), " p99 ",
                        Fixed(Percentile(reply_ms, 0.99), 2), " ms after the commit");
      }
      js.ran = !js_ms.empty();
      if (!js.ran) js.not_run = "no event seen on NATS";
      js.r.ok = static_cast<int64_t>(js_ms.size());
      if (js.ran) {
        js.r.p50_ms = Percentile(js_ms, 0.5);
        js.r.p99_ms = Percentile(js_ms, 0.99);
        js.r.p999_ms = Percentile(js_ms, 0.999);
      }
      rows_.push_back(js);
    }
    if (load) {
      load->Stop();
      row.note = absl::StrCat("background writes achieved ",
                              static_cast<int>(load->achieved_rate()), "/s (", load->errors(),
                              " errors, ", load->skipped(), " skipped at 64 in flight)");
      if (ceiling.ran && ceiling.r.qps > 0) {
        absl::StrAppend(
            &row.note, ", where PostgreSQL alone commits ", static_cast<int>(ceiling.r.qps),
            "/s of these writes (pgbench UpdateMultiCloudImage, 8 clients, just before: "
            "1,000/s is ",
            static_cast<int>(std::lround(1000 / ceiling.r.qps * 100)), "% of it)");
      }
      std::lock_guard<std::mutex> lock(writes.mu);
      if (!writes.ms.empty()) {
        const auto slow =
            std::count_if(writes.ms.begin(), writes.ms.end(), [](double w) { return w > 100; });
        absl::StrAppend(&row.note, ", their replies p50 ", Fixed(Percentile(writes.ms, 0.5), 1),
                        " p99 ", Fixed(Percentile(writes.ms, 0.99), 1), " max ",
                        Fixed(*std::max_element(writes.ms.begin(), writes.ms.end()), 1), " ms, ",
                        slow, " over 100 ms");
      }
    }
    if (timeouts > 0) absl::StrAppend(&row.note, " ", timeouts, " samples not seen within 5 s");
    if (!seen_ms.empty()) {
      absl::StrAppend(&row.note, row.note.empty() ? "" : "; ",
                      "seen by the bench's poll (reply to read, every ", poll.count(), " ms) p50 ",
                      Fixed(Percentile(seen_ms, 0.5), 1), " p99 ",
                      Fixed(Percentile(seen_ms, 0.99), 1), " ms");
    }
    // The tail's samples, each with its JetStream part: which side of NATS a stall was on.
    std::sort(slowest.rbegin(), slowest.rend());
    if (slowest.size() > 3) slowest.resize(3);
    if (!slowest.empty()) {
      absl::StrAppend(&row.note, row.note.empty() ? "" : "; ", ms.size(), " samples, slowest");
      for (const auto& [total, js, k] : slowest) {
        // The reply: the commit's WAL flush and the handler's return (PostgreSQL stamps the
        // commit before it flushes); JetStream: that and the relay's read and publish.
        absl::StrAppend(&row.note, " ", Fixed(total, 1), " ms (reply ", Fixed(reply_ms[k], 1),
                        ", JetStream ", js < 0 ? std::string("-") : Fixed(js, 1));
        if (stalled_ms[k] > 0) {
          absl::StrAppend(&row.note, ", the machine stalled ", Fixed(stalled_ms[k], 1));
        }
        absl::StrAppend(&row.note, ")");
      }
    }
    if (!ms.empty()) {
      // What the machine did meanwhile: a p99 past its target with most of the tail in stalls
      // the services could not have run in is the machine's, not the path's.
      absl::StrAppend(&row.note, "; the machine itself (a 1 ms sleeper at ",
                      row.stalls.realtime ? "real-time" : "normal", " priority) stalled ",
                      row.stalls.count, " times over 5 ms in ", Fixed(row.stalls.watched_s, 0),
                      " s, longest ", Fixed(row.stalls.longest_ms, 1), " ms, steal ",
                      Fixed(row.steal_share * 100, 1), "% of the CPUs; ",
                      row.stalls.stalled_samples, " samples overlapped a stall");
      if (row.stalls.p99_others_ms >= 0) {
        absl::StrAppend(&row.note, ", the other ", others.size(), " p99 ",
                        Fixed(row.stalls.p99_others_ms, 1), " ms");
      }
    }
    if (!relay_slow.empty()) absl::StrAppend(&row.note, "; ", relay_slow);
    if (!error.empty() && ms.empty()) row.note += " error: " + error;
    row.ran = !ms.empty();
    if (!row.ran && row.not_run.empty()) row.not_run = "no sample: " + row.note;
    row.r.ok = static_cast<int64_t>(ms.size());
    if (!ms.empty()) {
      row.r.p50_ms = Percentile(ms, 0.5);
      row.r.p99_ms = Percentile(ms, 0.99);
      row.r.p999_ms = Percentile(ms, 0.999);
    }
    rows_.push_back(row);
  }
}

const Row* Find(const std::vector<Row>& rows, const std::string& key) {
  // key: "op" or "op@in_flight"
  std::string op = key;
  int in_flight = -1;
  if (auto at = key.rfind('@'); at != std::string::npos && at + 1 < key.size() &&
                                key.find_first_not_of("0123456789", at + 1) == std::string::npos) {
    op = key.substr(0, at);
    in_flight = std::atoi(key.c_str() + at + 1);
  }
  for (const auto& r : rows) {
    if (r.op == op && (in_flight < 0 || r.in_flight == in_flight) && r.ran) return &r;
  }
  return nullptr;
}

void Bench::Judge() {
  for (auto& row : rows_) {
    if (!row.ran) {
      row.verdict = "not run";
      continue;
    }
    if (row.group == "memory") {
      if (!row.target.empty()) row.verdict = row.r.mean_ms <= 64 ? "met" : "NOT met";
      continue;
    }
    if (row.group == "event") {
      if (row.target.empty()) continue;
      double limit = row.op.find("1000") != std::string::npos ? 100 : 10;
      row.verdict = row.r.p99_ms <= limit ? "met" : "NOT met";
      continue;
    }
    if (row.baseline.empty()) continue;
    Row preset;
    if (row.baseline_qps > 0) {  // paired: measured right before this row
      preset.ran = true;
      preset.r.qps = row.baseline_qps;
      preset.r.p50_ms = row.baseline_p50;
      preset.r.p99_ms = row.baseline_p99;
    }
    const Row* base = row.baseline_qps > 0 ? &preset : Find(rows_, row.baseline);
    if (base == nullptr) {
      row.verdict = row.target == "-" ? "-" : "no baseline";
      continue;
    }
    row.baseline_qps = base->r.qps;
    row.baseline_p50 = base->r.p50_ms;
    row.baseline_p99 = base->r.p99_ms;
    // Paired rows: the median of their slices' ratios (QPS and p99, each slice over the mean of
    // the baseline slices before and after it), so that one slow second on a machine whose speed
    // drifts (a slice of the baseline or of the row) does not move the row's ratio.
    row.ratio_qps = !row.slice_ratios.empty() ? Median(row.slice_ratios)
                    : base->r.qps > 0         ? row.r.qps / base->r.qps
                                              : 0;
    row.ratio_p99 = !row.slice_p99_ratios.empty() ? Median(row.slice_p99_ratios)
                    : base->r.p99_ms > 0          ? row.r.p99_ms / base->r.p99_ms
                                                  : 0;
    if (row.target.rfind("QPS >= 0.7x", 0) == 0) {
      row.verdict = row.ratio_qps >= 0.7 && row.ratio_p99 <= 2 ? "met" : "NOT met";
    } else if (row.target.rfind("QPS >= 0.5x", 0) == 0) {
      row.verdict = row.ratio_qps >= 0.5 ? "met" : "NOT met";
    } else if (row.group == "outside") {
      // Agreement "within its client's own ceiling" (the issue's words): the scenario's rate by
      // the outside client within 15% of the bench client's, side by side, or of the outside
      // client's own echo rate where that is lower (no client measures a service faster than it
      // can call echo); and the same verdict on the scenario's target by each client's ratio to
      // its own echo. The two ratios themselves differ by more than the rates do: the clients'
      // echo rates differ (how each batches calls on a connection; docs/performance-history.md,
      // "An outside client"). The rates are compared slice by slice, the median of those ratios
      // deciding, as every paired row's ratio is: the totals over all slices move with one slow
      // second of either client.
      const double peer_ratio = Median(row.peer_slice_ratios);
      const bool same = (row.ratio_qps >= row.floor) == (peer_ratio >= row.floor);
      const double expected = std::min(row.peer_qps, base->r.qps);
      const double rate = !row.slice_rate_ratios.empty() ? Median(row.slice_rate_ratios)
                          : expected > 0                 ? row.r.qps / expected
                                                         : 0;
      const bool near = rate > 0 && std::abs(rate - 1) <= 0.15;
      const bool agrees = same && near;
      row.verdict =
          absl::StrCat(agrees ? "agrees" : "DIFFERS", " (", static_cast<int>(row.r.qps),
                       "/s against ", static_cast<int>(expected), "/s, ", Fixed(rate, 2),
                       "x by the slices' median; bench client ", Fixed(peer_ratio, 2), "x at ",
                       static_cast<int>(row.peer_qps), "/s side by side; service CPU ",
                       Fixed(row.server_cpu_us, 1), " us/call, ", Fixed(row.peer_cpu_us, 1),
                       " with the bench client; client CPU ", Fixed(row.client_cpu_us, 1),
                       " us/call, the bench client's ", Fixed(row.peer_client_cpu_us, 1), ")");
    } else if (row.target.rfind("deep within 2x", 0) == 0 ||
               row.target.rfind("within 2x", 0) == 0) {
      // Latency at the same concurrency: p50 of this page over p50 of the baseline page.
      double r = base->r.p50_ms > 0 ? row.r.p50_ms / base->r.p50_ms : 0;
      row.verdict =
          r <= 2 && (base->r.qps <= 0 || row.r.qps / base->r.qps >= 0.5) ? "met" : "NOT met";
    } else {
      row.verdict = "-";
    }
  }
}

void Bench::Print() {
  std::printf(
      "\nMCI benchmark, %s: %d MCIs (%d seeded), %d ServerTemplates, %d channels, %gs per "
      "scenario after %gs warm-up, %ld cores\n\n",
      started_at_.c_str(), scale_, seeded_, static_cast<int>(template_names_.size()), channels_n_,
      seconds_, warmup_, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%-44s %4s %9s %8s %8s %8s %9s %8s %9s  %-38s %7s %7s  %s\n", "operation", "infl",
              "QPS", "p50 ms", "p99 ms", "p999 ms", "srv us/op", "pg us/op", "cli us/op",
              "baseline", "xQPS", "xp99", "target / verdict");
  for (const auto& row : rows_) {
    if (!row.ran) {
      std::printf("%-44s %4d  not run: %s\n", row.op.c_str(), row.in_flight, row.not_run.c_str());
      continue;
    }
    if (row.group == "memory") {
      std::printf("%-44s %4s %9s  RSS %.1f MiB %s %s\n", row.op.c_str(), "", "", row.r.mean_ms,
                  row.target.c_str(), row.verdict.c_str());
      continue;
    }
    std::string cpu = row.group == "event" || row.group == "baseline"
                          ? "-"
                          : absl::StrCat(Fixed(row.server_cpu_us, 1), "");
    std::string pg = row.pg_cpu_us > 0 ? Fixed(row.pg_cpu_us, 1) : "-";
    std::string client = row.client_cpu_us > 0 ? Fixed(row.client_cpu_us, 1) : "-";
    std::string qps = row.group == "event" ? "-" : Fixed(row.r.qps, 0);
    std::string base = row.baseline.empty() ? "" : row.baseline;
    if (row.baseline_qps > 0) absl::StrAppend(&base, " (", Fixed(row.baseline_qps, 0), ")");
    std::printf("%-44s %4d %9s %8s %8s %8s %9s %8s %9s  %-38s %7s %7s  %s%s%s%s\n", row.op.c_str(),
                row.in_flight, qps.c_str(), Fixed(row.r.p50_ms, 3).c_str(),
                Fixed(row.r.p99_ms, 3).c_str(), Fixed(row.r.p999_ms, 3).c_str(), cpu.c_str(),
                pg.c_str(), client.c_str(), base.c_str(),
                row.ratio_qps > 0 ? Fixed(row.ratio_qps, 2).c_str() : "",
                row.ratio_p99 > 0 ? Fixed(row.ratio_p99, 2).c_str() : "", row.target.c_str(),
                row.verdict.empty() ? "" : (" -> " + row.verdict).c_str(),
                row.note.empty() ? "" : "  [", row.note.empty() ? "" : (row.note + "]").c_str());
  }
  std::printf(
      "\nsrv us/op: CPU time (utime+stime from /proc) of the service processes serving "
      "the scenario per operation (for echo: the echo server); pg us/op: PostgreSQL's; "
      "cli us/op: the client's (this process; for outside rows, the outside client's). "
      "xQPS, xp99: this row over its baseline, measured in this run.\n");
  std::fflush(stdout);
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += " ";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void Bench::WriteJson() {
  std::filesystem::create_directories(results_dir_);
  std::ostringstream j;
  j << "{\n  \"started\": \"" << started_at_ << "\",\n  \"scale\": " << scale_
    << ",\n  \"seeded\": " << seeded_ << ",\n  \"templates\": " << template_names_.size()
    << ",\n  \"channels\": " << channels_n_ << ",\n  \"seconds\": " << seconds_
    << ",\n  \"cores\": " << sysconf(_SC_NPROCESSORS_ONLN) << ",\n  \"rows\": [\n";
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& r = rows_[i];
    j << "    {\"operation\": \"" << JsonEscape(r.op) << "\", \"group\": \"" << r.group
      << "\", \"in_flight\": " << r.in_flight << ", \"ran\": " << (r.ran ? "true" : "false");
    if (!r.ran) {
      j << ", \"not_run\": \"" << JsonEscape(r.not_run) << "\"";
    } else if (r.group == "memory") {
      j << ", \"rss_mib\": " << Fixed(r.r.mean_ms, 1);
    } else {
      j << ", \"qps\": " << Fixed(r.r.qps, 1) << ", \"ok\": " << r.r.ok
        << ", \"errors\": " << r.r.errors << ", \"p50_ms\": " << Fixed(r.r.p50_ms, 4)
        << ", \"p99_ms\": " << Fixed(r.r.p99_ms, 4) << ", \"p999_ms\": " << Fixed(r.r.p999_ms, 4)
        << ", \"server_cpu_us_per_op\": " << Fixed(r.server_cpu_us, 2)
        << ", \"server_cores\": " << Fixed(r.server_cores, 3)
        << ", \"pg_cpu_us_per_op\": " << Fixed(r.pg_cpu_us, 2)
        << ", \"client_cpu_us_per_op\": " << Fixed(r.client_cpu_us, 2);
    }
    j << ", \"baseline\": \"" << JsonEscape(r.baseline)
      << "\", \"baseline_qps\": " << Fixed(r.baseline_qps, 1)
      << ", \"baseline_p99_ms\": " << Fixed(r.baseline_p99, 4)
      << ", \"ratio_qps\": " << Fixed(r.ratio_qps, 3)
      << ", \"ratio_p99\": " << Fixed(r.ratio_p99, 3);
    if (r.steal_share >= 0) j << ", \"steal_pct\": " << Fixed(r.steal_share * 100, 2);
    if (r.stalls.measured) {
      j << ", \"machine_stalls\": {\"realtime\": " << (r.stalls.realtime ? "true" : "false")
        << ", \"count\": " << r.stalls.count
        << ", \"longest_ms\": " << Fixed(r.stalls.longest_ms, 1)
        << ", \"total_ms\": " << Fixed(r.stalls.total_ms, 1)
        << ", \"watched_s\": " << Fixed(r.stalls.watched_s, 1)
        << ", \"stalled_samples\": " << r.stalls.stalled_samples
        << ", \"p99_others_ms\": " << Fixed(r.stalls.p99_others_ms, 3) << "}";
    }
    if (r.group == "outside") {
      j << ", \"bench_client_qps\": " << Fixed(r.peer_qps, 1)
        << ", \"bench_client_server_cpu_us_per_op\": " << Fixed(r.peer_cpu_us, 2)
        << ", \"bench_client_cpu_us_per_op\": " << Fixed(r.peer_client_cpu_us, 2);
    }
    for (auto [key, ratios] :
         {std::pair<const char*, const std::vector<double>*>{"slice_ratios", &r.slice_ratios},
          {"slice_p99_ratios", &r.slice_p99_ratios},
          {"bench_client_slice_ratios", &r.peer_slice_ratios},
          {"slice_rate_ratios", &r.slice_rate_ratios},
          {"slice_qps", &r.slice_qps},
          {"baseline_slice_qps", &r.baseline_slice_qps},
          {"slice_baseline_qps", &r.slice_baseline_qps}}) {
      if (ratios->empty()) continue;
      j << ", \"" << key << "\": [";
      for (size_t k = 0; k < ratios->size(); ++k) j << (k ? ", " : "") << Fixed((*ratios)[k], 3);
      j << "]";
    }
    j << ", \"target\": \"" << JsonEscape(r.target) << "\", \"verdict\": \""
      << JsonEscape(r.verdict) << "\", \"note\": \"" << JsonEscape(r.note) << "\"}"
      << (i + 1 < rows_.size() ? "," : "") << "\n";
  }
  j << "  ]\n}\n";
  std::string stamp = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone());
  std::string path = absl::StrCat(results_dir_, "/bench-", stamp, ".json");
  std::ofstream(path) << j.str();
  std::ofstream(results_dir_ + "/latest.json") << j.str();
  std::printf("results: %s\n", path.c_str());
}

int Bench::Run() {
  std::filesystem::create_directories(results_dir_);
  if (!Start()) return 1;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Memory("idle");
  absl::Time seed_start = absl::Now();
  if (!SeedApi()) {
    Log("seeding failed");
    return 1;
  }
  Log(absl::StrCat("seeded in ", absl::FormatDuration(absl::Trunc(absl::Now() - seed_start,
                                                                  absl::Milliseconds(100)))));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  Memory("after seeding");
  const bool two_scales = scale_ > 10000;
  Reads(two_scales ? " (10k)" : "");
  Outside();
  Lists(two_scales ? " (10k)" : "");
  if (two_scales) {
    Log(absl::StrCat("growing the catalog to ", scale_, " MCIs"));
    absl::Time t = absl::Now();
    SeedSql(10001, scale_);
    Log(absl::StrCat("grown in ",
                     absl::FormatDuration(absl::Trunc(absl::Now() - t, absl::Seconds(1)))));
    std::string suffix = absl::StrCat(" (", scale_ >= 1000000 ? scale_ / 1000000 : scale_ / 1000,
                                      scale_ >= 1000000 ? "M)" : "k)");
    size_t before = rows_.size();
    Reads(suffix);
    Lists(suffix);
    // Each large-scale row is compared with its 10k row.
    for (size_t i = before; i < rows_.size(); ++i) {
      Row& row = rows_[i];
      std::string small = row.op.substr(0, row.op.size() - suffix.size()) + " (10k)";
      if (row.group == "echo") continue;
      row.baseline = row.group == "read" ? absl::StrCat(small, "@", row.in_flight) : small;
      row.baseline_qps = row.baseline_p50 = row.baseline_p99 = 0;
      row.target = "within 2x of 10k";
    }
    // The grown tables' autovacuum would otherwise run inside the write slices, its CPU
    // counted against whichever slice it fell in.
    Settle();
  }
  Writes();
  Events();
  Memory("after the load");
  Judge();
  Print();
  WriteJson();
  return 0;
}

}  // namespace
}  // namespace mci::bench

int main() {
  // The client's gRPC calls lock absl::Mutex, whose lock-order graph Debian's Abseil keeps: off,
  // as in the services (libs/common/server.cc) and the echo server, so the client spends on the
  // calls only what any client would.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  mci::bench::Bench bench;
  int rc = bench.Run();
  std::fflush(stdout);
  // The services, NATS and PostgreSQL are stopped by the harness's destructors.
  return rc;
}
