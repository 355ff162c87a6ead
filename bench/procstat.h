#pragma once

// What /proc says about the processes under test: CPU time (utime + stime) and resident memory.

#include <sys/types.h>

#include <istream>
#include <string>
#include <vector>

namespace mci::bench {

// utime + stime of `pid` in seconds (0 when it is gone).
double CpuSeconds(pid_t pid);
// Sum over several processes.
double CpuSeconds(const std::vector<pid_t>& pids);
// utime + stime of this process's children that have ended and been waited for (getrusage).
double ChildrenCpuSeconds();
// The time the hypervisor ran others while this machine's CPUs wanted to run (the steal column
// of /proc/stat's "cpu" line, all CPUs together), in seconds.
double StealSeconds();
// The same read from `stat`, a /proc/stat text, at `ticks_per_second` (USER_HZ): 0 when its
// first line is not the "cpu" line with a steal column.
double StealSecondsOf(std::istream& stat, double ticks_per_second);
// The CPUs online (at least 1), for shares of all CPUs' time.
double Cpus();
// VmRSS of `pid` in MiB (0 when it is gone).
double RssMiB(pid_t pid);
// The live children of `parent` whose executable's file name is `name`.
std::vector<pid_t> ChildrenNamed(pid_t parent, const std::string& name);
// Every live descendant of `parent` (children, their children, ...).
std::vector<pid_t> Descendants(pid_t parent);

}  // namespace mci::bench
