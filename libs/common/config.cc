#include "libs/common/config.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace mci {

absl::StatusOr<Config> Config::Parse(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg.substr(0, 2) != "--") {
      config.args_.emplace_back(arg);
      continue;
    }
    arg.remove_prefix(2);
    auto eq = arg.find('=');
    if (eq != absl::string_view::npos) {
      config.flags_[std::string(arg.substr(0, eq))] = std::string(arg.substr(eq + 1));
    } else if (i + 1 < argc && absl::string_view(argv[i + 1]).substr(0, 2) != "--") {
      config.flags_[std::string(arg)] = argv[++i];
    } else {
      config.flags_[std::string(arg)] = "true";
    }
  }
  return config;
}

std::string Config::EnvName(absl::string_view flag) {
  return absl::StrCat("MCI_", absl::AsciiStrToUpper(absl::StrReplaceAll(flag, {{"-", "_"}})));
}

std::string Config::String(absl::string_view flag, absl::string_view fallback) const {
  if (auto it = flags_.find(flag); it != flags_.end()) return it->second;
  if (const char* env = std::getenv(EnvName(flag).c_str()); env != nullptr && *env != '\0') {
    return env;
  }
  return std::string(fallback);
}

absl::StatusOr<int> Config::Int(absl::string_view flag, int fallback) const {
  std::string text = String(flag, "");
  if (text.empty()) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " (", EnvName(flag), ") must be an integer, got \"", text, "\"."));
  }
  return value;
}

bool Config::Bool(absl::string_view flag, bool fallback) const {
  std::string text = absl::AsciiStrToLower(String(flag, ""));
  if (text.empty()) return fallback;
  return text == "1" || text == "true" || text == "yes" || text == "on";
}

}  // namespace mci
