#include "libs/common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mci::log {
namespace {

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
std::mutex mu;
std::string& ServiceName() {
  static std::string name;
  return name;
}

void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void SetService(absl::string_view service) {
  std::lock_guard<std::mutex> lock(mu);
  ServiceName() = std::string(service);
}

void SetMinLevel(Level level) { min_level = static_cast<int>(level); }

bool ParseLevel(absl::string_view text, Level* level) {
  if (text == "debug")
    *level = Level::kDebug;
  else if (text == "info")
    *level = Level::kInfo;
  else if (text == "warning" || text == "warn")
    *level = Level::kWarning;
  else if (text == "error")
    *level = Level::kError;
  else
    return false;
  return true;
}

void Write(Level level, absl::string_view message, std::initializer_list<Field> fields) {
  if (static_cast<int>(level) < min_level.load()) return;
  std::string line = "{\"ts\":";
  AppendJsonString(&line,
                   absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()));
  absl::StrAppend(&line, ",\"level\":\"", LevelName(level), "\"");
  std::lock_guard<std::mutex> lock(mu);
  if (!ServiceName().empty()) {
    line.append(",\"service\":");
    AppendJsonString(&line, ServiceName());
  }
  line.append(",\"msg\":");
  AppendJsonString(&line, message);
  for (const auto& [key, value] : fields) {
    line.push_back(',');
    AppendJsonString(&line, key);
    line.push_back(':');
    AppendJsonString(&line, value);
  }
  line.append("}\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace mci::log
