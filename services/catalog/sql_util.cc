#include "services/catalog/sql_util.h"

#include <cmath>
#include <random>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_join.h"

namespace mci::catalog {

std::vector<std::string> JsonStrings(const char* json) {
  std::vector<std::string> out;
  google::protobuf::ListValue list;
  if (json == nullptr || !google::protobuf::util::JsonStringToMessage(json, &list).ok()) return out;
  for (const auto& v : list.values()) out.push_back(v.string_value());
  return out;
}

std::vector<int> JsonInts(const char* json) {
  std::vector<int> out;
  google::protobuf::ListValue list;
  if (json == nullptr || !google::protobuf::util::JsonStringToMessage(json, &list).ok()) return out;
  for (const auto& v : list.values()) out.push_back(static_cast<int>(v.number_value()));
  return out;
}

std::string JoinArray(const std::vector<std::string>& values) {
  return absl::StrJoin(values, "\x1f");
}

google::protobuf::Timestamp ToTimestamp(double epoch_seconds) {
  google::protobuf::Timestamp ts;
  double whole = std::floor(epoch_seconds);
  ts.set_seconds(static_cast<int64_t>(whole));
  ts.set_nanos(static_cast<int32_t>((epoch_seconds - whole) * 1e9));
  return ts;
}

std::string RandomId(absl::string_view prefix, int length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out(prefix);
  std::uniform_int_distribution<int> pick(0, 35);
  for (int i = 0; i < length; ++i) out.push_back(kAlphabet[pick(rng)]);
  return out;
}

}  // namespace mci::catalog
