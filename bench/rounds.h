// How the bench pairs each scenario with its baseline (bench_main.cc): slices of the two measured
// side by side, each scenario slice between two baseline slices, and several paired rows measured
// together in rounds. Free of gRPC and of the stack, so that the order and the arithmetic are
// tested on their own (tests/unit/bench/rounds_test.cc).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace mci::bench {

// One value per slice (a rate, a p99) of a scenario and of its baseline, recorded in the order
// they were measured, and the scenario's value over its baseline's slice by slice: over the mean
// of the baseline slices just before and just after it (the one before alone where none follows),
// so that the machine's drift over those seconds cancels rather than falling on one side.
class SlicePairs {
 public:
  // A baseline slice, after the last slice recorded.
  void AddBase(double value) { base_.push_back(value); }
  // A scenario slice, after the last baseline slice recorded (its baseline after it is the next
  // one recorded).
  void AddRow(double value) {
    row_.push_back(value);
    before_.push_back(base_.empty() ? kNone : base_.size() - 1);
  }
  const std::vector<double>& base() const { return base_; }
  const std::vector<double>& row() const { return row_; }
  // Each scenario slice's baseline: the mean of the baseline slices around it (0: none).
  std::vector<double> Around() const {
    std::vector<double> out;
    for (size_t b : before_) {
      if (b == kNone) {
        out.push_back(0);
      } else {
        out.push_back(b + 1 < base_.size() ? (base_[b] + base_[b + 1]) / 2 : base_[b]);
      }
    }
    return out;
  }
  // Slice by slice, the scenario's value over its baseline's (0 where the baseline is 0).
  std::vector<double> Ratios() const {
    const std::vector<double> around = Around();
    std::vector<double> out;
    for (size_t i = 0; i < row_.size(); ++i) out.push_back(around[i] > 0 ? row_[i] / around[i] : 0);
    return out;
  }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  std::vector<double> base_, row_;
  std::vector<size_t> before_;
};

// Measures paired rows together in `rounds` rounds: each round visits every row in turn, a
// baseline slice, a scenario slice, a baseline slice. Where the row visited before has the same
// baseline key (the same baseline, possibly another row's copy of it), its last baseline slice is
// this visit's first, measured once and recorded for both; a row visited twice in a row (one row
// alone) likewise shares it with itself, which gives baseline, scenario, baseline, scenario, ...,
// baseline. Spread over the rounds, each row's slices sample the machine's state over the whole
// of the rows' time rather than over a few seconds of it.
//
// prepare(row) runs at the start of each of a row's visits (before its first baseline slice, or
// before its scenario slice where that baseline slice is the row before's): what the scenario
// needs to find the state it would be in under steady load (the bench refills the caches that
// the seconds since the row's last visit let expire). measure(row, base) -> Slice measures one
// slice of a row's baseline (base) or scenario; record(row, base, slice) records one for that
// row. Slices are measured in the order above.
template <typename Slice, typename Prepare, typename Measure, typename Record>
void MeasureInRounds(const std::vector<std::string>& keys, int rounds, Prepare prepare,
                     Measure measure, Record record) {
  std::optional<Slice> last;  // the last baseline slice measured
  size_t last_row = 0;        // and the row it was measured for
  for (int round = 0; round < rounds; ++round) {
    for (size_t row = 0; row < keys.size(); ++row) {
      if (!last || last_row != row) prepare(row);
      if (!last || keys[last_row] != keys[row]) {
        record(row, true, measure(row, true));
      } else if (last_row != row) {
        record(row, true, *last);
      }  // else: this row's own last baseline slice, recorded already.
      record(row, false, measure(row, false));
      last = measure(row, true);
      last_row = row;
      record(row, true, *last);
    }
  }
}

}  // namespace mci::bench
