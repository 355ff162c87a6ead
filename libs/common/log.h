#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace mci::log {

enum class Level { kDebug, kInfo, kWarning, kError };

using Field = std::pair<absl::string_view, std::string>;

// One JSON object per line on stderr: {"ts":..,"level":..,"service":..,"msg":..,fields...}.
void Write(Level level, absl::string_view message, std::initializer_list<Field> fields = {});
void SetService(absl::string_view service);
void SetMinLevel(Level level);
bool ParseLevel(absl::string_view text, Level* level);

inline void Info(absl::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, m, f);
}
inline void Warn(absl::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kWarning, m, f);
}
inline void Error(absl::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kError, m, f);
}
inline void Debug(absl::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kDebug, m, f);
}

}  // namespace mci::log
