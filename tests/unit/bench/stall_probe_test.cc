// The bench's probe of the machine's own stalls (bench/stall_probe.h) and the hypervisor's steal
// it reports (bench/procstat.h).
#include "bench/stall_probe.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sstream>

#include "bench/procstat.h"

namespace mci::bench {
namespace {

int64_t WallMicros() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000 + t.tv_nsec / 1000;
}

TEST(StalledWithinTest, CountsOnlyTheOverlap) {
  const std::vector<Stall> stalls = {{100, 200}, {300, 350}, {1000, 1100}};
  EXPECT_EQ(StalledWithin(stalls, 0, 2000), 100 + 50 + 100);
  EXPECT_EQ(StalledWithin(stalls, 150, 320), 50 + 20);
  EXPECT_EQ(StalledWithin(stalls, 200, 300), 0);  // touching ends overlap by nothing
  EXPECT_EQ(StalledWithin(stalls, 400, 900), 0);
  EXPECT_EQ(StalledWithin(stalls, 1050, 1060), 10);  // inside one stall
  EXPECT_EQ(StalledWithin({}, 0, 2000), 0);
}

// The whole process stopped (SIGSTOP, then SIGCONT 100 ms later, from a child) is a stall the
// probe records, where it happened.
TEST(StallProbeTest, RecordsTheProcessStoppedAsAStall) {
  StallProbe probe(absl::Milliseconds(5));
  std::printf("real-time priority: %s\n", probe.realtime() ? "yes" : "no");
  const int64_t before = WallMicros();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const pid_t parent = getppid();
    kill(parent, SIGSTOP);
    usleep(100000);
    kill(parent, SIGCONT);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const int64_t after = WallMicros();
  probe.Stop();
  int64_t longest = 0;
  for (const Stall& s : probe.stalls()) {
    EXPECT_LT(s.from_us, s.to_us);
    longest = std::max(longest, StalledWithin({s}, before, after));
  }
  // Stopped for at least the child's 100 ms sleep, less the probe's 1 ms and the threshold.
  EXPECT_GE(longest, 90000) << probe.stalls().size() << " stalls";
  EXPECT_GT(probe.watched_seconds(), 0.09);
  EXPECT_GE(probe.steal_share(), 0);
  EXPECT_LE(probe.steal_share(), 1);
}

// The steal column of /proc/stat's "cpu" line (the eighth number), in seconds at USER_HZ.
TEST(StealSecondsTest, ReadsTheCpuLinesStealColumn) {
  std::istringstream stat(
      "cpu  4705 150 1120 16250 520 0 23 250 0 0\n"
      "cpu0 2355 75 560 8125 260 0 12 125 0 0\n");
  EXPECT_DOUBLE_EQ(StealSecondsOf(stat, 100), 2.5);
  // A kernel without the column, another first line, or no ticks: none counted.
  std::istringstream short_line("cpu  4705 150 1120 16250 520 0 23\ncpu0 1 2 3 4 5 6 7 8\n");
  EXPECT_EQ(StealSecondsOf(short_line, 100), 0);
  std::istringstream other("intr 12345 0 0\n");
  EXPECT_EQ(StealSecondsOf(other, 100), 0);
  std::istringstream no_ticks("cpu  1 2 3 4 5 6 7 8 9 10\n");
  EXPECT_EQ(StealSecondsOf(no_ticks, 0), 0);
  // This machine's own: a number, never negative.
  EXPECT_GE(StealSeconds(), 0);
}

TEST(StallProbeTest, StopsTwiceAndOnDestruction) {
  StallProbe probe;
  probe.Stop();
  probe.Stop();
  const double watched = probe.watched_seconds();
  usleep(20000);
  EXPECT_EQ(probe.watched_seconds(), watched);  // frozen at the stop
}

}  // namespace
}  // namespace mci::bench
