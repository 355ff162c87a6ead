#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mci {

// Flags with environment-variable equivalents: --database-url=... or MCI_DATABASE_URL=...
// A flag given on the command line wins over the environment, which wins over the default.
class Config {
 public:
  static absl::StatusOr<Config> Parse(int argc, char** argv);

  std::string String(absl::string_view flag, absl::string_view fallback) const;
  absl::StatusOr<int> Int(absl::string_view flag, int fallback) const;
  bool Bool(absl::string_view flag, bool fallback) const;
  // The environment variable that stands for a flag: database-url -> MCI_DATABASE_URL.
  static std::string EnvName(absl::string_view flag);
  // The positional arguments (for CLI tools).
  const std::vector<std::string>& args() const { return args_; }

 private:
  std::map<std::string, std::string, std::less<>> flags_;
  std::vector<std::string> args_;
};

}  // namespace mci
