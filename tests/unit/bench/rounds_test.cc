// The bench's pairing of scenarios with their baselines (bench/rounds.h): the order slices are
// measured in, which baseline slices each scenario slice is compared with, and the ratios.
#include "bench/rounds.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mci::bench {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::Pointwise;

// A slice as the fake measures it: which row, baseline or scenario, and when (its index in the
// measuring order).
struct Slice {
  size_t row;
  bool base;
  int at;
};

// The order MeasureInRounds measures in, as "<row><B|R>", and what each row records.
struct Recorder {
  std::vector<std::string> measured;
  std::vector<std::vector<std::string>> recorded;
  void Run(const std::vector<std::string>& keys, int rounds) {
    recorded.assign(keys.size(), {});
    int at = 0;
    MeasureInRounds<Slice>(
        keys, rounds, [&](size_t row) { measured.push_back(std::to_string(row) + "P"); },
        [&](size_t row, bool base) {
          measured.push_back(std::to_string(row) + (base ? "B" : "R"));
          return Slice{row, base, at++};
        },
        [&](size_t row, bool base, const Slice& slice) {
          // The slice recorded, and whose it was when measured.
          recorded[row].push_back(std::to_string(slice.row) + (base ? "B" : "R") +
                                  std::to_string(slice.at));
        });
  }
};

TEST(MeasureInRoundsTest, OneRowAlternatesWithItsBaselineWhichClosesTheRun) {
  Recorder r;
  r.Run({"echo"}, 3);
  // Prepared once: its visits follow each other.
  EXPECT_THAT(r.measured, ElementsAre("0P", "0B", "0R", "0B", "0R", "0B", "0R", "0B"));
  EXPECT_THAT(r.recorded[0], ElementsAre("0B0", "0R1", "0B2", "0R3", "0B4", "0R5", "0B6"));
}

TEST(MeasureInRoundsTest, EachRoundVisitsEveryRowBetweenTwoOfItsBaselineSlices) {
  Recorder r;
  r.Run({"echo-a", "echo-b"}, 2);
  EXPECT_THAT(r.measured, ElementsAre("0P", "0B", "0R", "0B", "1P", "1B", "1R", "1B",  // round 1
                                      "0P", "0B", "0R", "0B", "1P", "1B", "1R", "1B"));
  EXPECT_THAT(r.recorded[0], ElementsAre("0B0", "0R1", "0B2", "0B6", "0R7", "0B8"));
  EXPECT_THAT(r.recorded[1], ElementsAre("1B3", "1R4", "1B5", "1B9", "1R10", "1B11"));
}

TEST(MeasureInRoundsTest, RowsNextToEachOtherWithTheSameBaselineShareTheSliceBetweenThem) {
  Recorder r;
  r.Run({"echo-a", "echo-a", "echo-b"}, 2);
  // Row 1 is prepared after the baseline slice it shares with row 0, before its scenario slice.
  EXPECT_THAT(r.measured,
              ElementsAre("0P", "0B", "0R", "0B", "1P", "1R", "1B", "2P", "2B", "2R", "2B",  // 1
                          "0P", "0B", "0R", "0B", "1P", "1R", "1B", "2P", "2B", "2R", "2B"));
  // Row 1's first baseline slice is row 0's last, recorded for both.
  EXPECT_THAT(r.recorded[0], ElementsAre("0B0", "0R1", "0B2", "0B8", "0R9", "0B10"));
  EXPECT_THAT(r.recorded[1], ElementsAre("0B2", "1R3", "1B4", "0B10", "1R11", "1B12"));
  EXPECT_THAT(r.recorded[2], ElementsAre("2B5", "2R6", "2B7", "2B13", "2R14", "2B15"));
}

TEST(SlicePairsTest, EachSliceIsOverTheMeanOfTheBaselineSlicesAroundIt) {
  SlicePairs p;
  p.AddBase(100);
  p.AddRow(90);
  p.AddBase(80);
  p.AddRow(45);
  p.AddBase(100);
  p.AddBase(40);  // another visit: its own baseline before it
  p.AddRow(30);
  EXPECT_THAT(p.Around(), ElementsAre(90, 90, 40));  // the last with none after: the one before
  EXPECT_THAT(p.Ratios(), Pointwise(DoubleNear(1e-12), {1.0, 0.5, 0.75}));
  EXPECT_THAT(p.base(), ElementsAre(100, 80, 100, 40));
  EXPECT_THAT(p.row(), ElementsAre(90, 45, 30));
}

TEST(SlicePairsTest, ASliceWithoutABaselineHasNoRatio) {
  SlicePairs p;
  p.AddRow(10);
  p.AddBase(0);
  p.AddRow(10);
  EXPECT_THAT(p.Ratios(), ElementsAre(0, 0));
}

// The point of the pairing: a machine whose speed drifts steadily over the run, and scenarios
// running at fixed shares of its speed, get exactly those shares back, in rounds as alone; the
// baseline slice before a scenario slice alone would be off by the drift.
TEST(MeasureInRoundsTest, RatiosCancelAMachineDriftingSteadily) {
  const std::vector<std::string> keys = {"echo-a", "echo-a", "echo-b"};
  const std::vector<double> share = {0.9, 0.6, 1.1};
  std::vector<SlicePairs> pairs(keys.size());
  int at = 0;
  MeasureInRounds<double>(
      keys, 12, [](size_t) {},
      [&](size_t row, bool base) {
        const double speed = 50000 - 400.0 * at++;  // the machine slowing by 0.8% a slice
        return base ? speed : speed * share[row];
      },
      [&](size_t row, bool base, double qps) {
        if (base) {
          pairs[row].AddBase(qps);
        } else {
          pairs[row].AddRow(qps);
        }
      });
  for (size_t row = 0; row < keys.size(); ++row) {
    ASSERT_EQ(pairs[row].Ratios().size(), 12u);
    for (double ratio : pairs[row].Ratios()) EXPECT_NEAR(ratio, share[row], 1e-9) << row;
  }
}

}  // namespace
}  // namespace mci::bench
