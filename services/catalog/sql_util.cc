#include "services/catalog/sql_util.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/str_join.h"

namespace mci::catalog {

namespace {

// A reader for the JSON that PostgreSQL's array_to_json and json_agg produce here: arrays of
// strings, numbers, booleans, null and nested arrays. It replaces protobuf's JSON parser, whose
// per-call set-up cost dominated every read (a profile of GetMultiCloudImage and
// ListMultiCloudImages showed most of the catalog's CPU in JsonStringToMessage).
class JsonReader {
 public:
  explicit JsonReader(const char* json)
      : p_(json == nullptr ? "" : json), end_(p_ + std::strlen(p_)) {}

  bool Done() {
    SkipSpace();
    return p_ == end_;
  }
  // Calls `element` for each element of the array at the cursor; false on malformed input.
  template <typename Fn>
  bool Array(Fn&& element) {
    SkipSpace();
    if (p_ == end_ || *p_ != '[') return false;
    ++p_;
    SkipSpace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      if (!element()) return false;
      SkipSpace();
      if (p_ == end_) return false;
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }
  // A string, null (as "") or a number or boolean (as its text).
  bool Scalar(std::string* out) {
    SkipSpace();
    out->clear();
    if (p_ == end_) return false;
    if (*p_ == '"') return String(out);
    const char* start = p_;
    while (p_ != end_ && *p_ != ',' && *p_ != ']' && *p_ != ' ' && *p_ != '\n') ++p_;
    absl::string_view word(start, static_cast<size_t>(p_ - start));
    if (word == "null") return true;
    if (word.empty() || word == "[" || word.front() == '[' || word.front() == '{') return false;
    out->assign(word.data(), word.size());
    return true;
  }
  bool Number(double* out) {
    std::string text;
    if (!Scalar(&text)) return false;
    if (text.empty()) {
      *out = 0;
      return true;
    }
    char* end = nullptr;
    *out = std::strtod(text.c_str(), &end);
    return end != nullptr && *end == '\0';
  }

 private:
  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r')) ++p_;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool Hex4(uint32_t* out) {
    if (end_ - p_ < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *p_++;
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }
  bool String(std::string* out) {
    ++p_;  // the opening quote
    while (p_ != end_) {
      const char* run = p_;
      while (p_ != end_ && *p_ != '"' && *p_ != '\\') ++p_;
      out->append(run, static_cast<size_t>(p_ - run));
      if (p_ == end_) return false;
      if (*p_++ == '"') return true;
      if (p_ == end_) return false;
      char e = *p_++;
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            p_ += 2;
            uint32_t low = 0;
            if (!Hex4(&low)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  const char* p_;
  const char* end_;
};

}  // namespace

std::vector<std::string> JsonStrings(const char* json) {
  std::vector<std::string> out;
  JsonReader reader(json);
  bool ok = reader.Array([&] {
    out.emplace_back();
    return reader.Scalar(&out.back());
  });
  if (!ok || !reader.Done()) out.clear();
  return out;
}

std::vector<int> JsonInts(const char* json) {
  std::vector<int> out;
  JsonReader reader(json);
  bool ok = reader.Array([&] {
    double v = 0;
    if (!reader.Number(&v)) return false;
    out.push_back(static_cast<int>(v));
    return true;
  });
  if (!ok || !reader.Done()) out.clear();
  return out;
}

std::vector<std::vector<std::string>> JsonStringRows(const char* json) {
  std::vector<std::vector<std::string>> out;
  JsonReader reader(json);
  bool ok = reader.Array([&] {
    out.emplace_back();
    std::vector<std::string>& row = out.back();
    return reader.Array([&] {
      row.emplace_back();
      return reader.Scalar(&row.back());
    });
  });
  if (!ok || !reader.Done()) out.clear();
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
