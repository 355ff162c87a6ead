#include "bench/procstat.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mci::bench {
namespace {

// Fields of /proc/<pid>/stat after the parenthesised command (which may hold spaces).
std::vector<std::string> StatFields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  return fields;  // fields[0] is the state (field 3 of stat(5))
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> pids;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return pids;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0') pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(dir);
  return pids;
}

pid_t ParentOf(pid_t pid) {
  auto f = StatFields(pid);
  return f.size() > 1 ? static_cast<pid_t>(std::atol(f[1].c_str())) : -1;
}

}  // namespace

double CpuSeconds(pid_t pid) {
  auto f = StatFields(pid);
  // utime and stime are fields 14 and 15 of stat(5): indexes 11 and 12 here.
  if (f.size() < 13) return 0;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::atof(f[11].c_str()) + std::atof(f[12].c_str())) / ticks;
}

double CpuSeconds(const std::vector<pid_t>& pids) {
  double total = 0;
  for (pid_t p : pids) total += CpuSeconds(p);
  return total;
}

double ChildrenCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

double StealSeconds() {
  std::ifstream in("/proc/stat");
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return StealSecondsOf(in, ticks);
}

double StealSecondsOf(std::istream& stat, double ticks_per_second) {
  std::string cpu;
  double field[8] = {};
  if (!(stat >> cpu) || cpu != "cpu") return 0;
  // user nice system idle iowait irq softirq steal
  for (double& f : field) {
    if (!(stat >> f)) return 0;
  }
  return ticks_per_second > 0 ? field[7] / ticks_per_second : 0;
}

double Cpus() { return static_cast<double>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))); }

double RssMiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

std::vector<pid_t> ChildrenNamed(pid_t parent, const std::string& name) {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids()) {
    if (ParentOf(pid) != parent) continue;
    char buf[4096];
    ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof(buf) - 1);
    if (n <= 0) continue;
    std::string exe(buf, static_cast<size_t>(n));
    if (exe.size() >= name.size() &&
        exe.compare(exe.size() - name.size(), name.size(), name) == 0 &&
        (exe.size() == name.size() || exe[exe.size() - name.size() - 1] == '/')) {
      out.push_back(pid);
    }
  }
  return out;
}

std::vector<pid_t> Descendants(pid_t parent) {
  std::vector<pid_t> all = AllPids();
  std::vector<std::pair<pid_t, pid_t>> links;
  for (pid_t pid : all) links.push_back({pid, ParentOf(pid)});
  std::vector<pid_t> out;
  std::vector<pid_t> frontier = {parent};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    for (const auto& [child, pp] : links) {
      if (pp == p) {
        out.push_back(child);
        frontier.push_back(child);
      }
    }
  }
  return out;
}

}  // namespace mci::bench
