#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mci::catalog {

// Text arrays travel as JSON (array_to_json(x)::text) from PostgreSQL and as \x1f-joined text
// into it (string_to_array($n, E'\x1f')); tags and cloud ids never contain control characters.
std::vector<std::string> JsonStrings(const char* json);
std::vector<int> JsonInts(const char* json);
// A JSON array of arrays of strings (null as ""), e.g. json_agg(json_build_array(...)).
std::vector<std::vector<std::string>> JsonStringRows(const char* json);
std::string JoinArray(const std::vector<std::string>& values);
google::protobuf::Timestamp ToTimestamp(double epoch_seconds);
// A random id: `prefix` + `length` characters [a-z0-9].
std::string RandomId(absl::string_view prefix, int length);

}  // namespace mci::catalog
