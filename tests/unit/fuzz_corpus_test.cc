// Stalk — Celery monitoring server.
// Replays every file of every fuzz corpus (fuzz/corpus/<target>/) through the same entry points the
// libFuzzer binaries run (fuzz/fuzz_targets.h), compiled here with g++ and no clang: the seed inputs
// and every crash the fuzzers ever found are regression tests in every CI run (label fuzz-smoke).
// A broken invariant aborts inside the target with its message, which fails this test.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_targets.h"

namespace stalk::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> CorpusFiles(std::string_view target) {
  std::vector<fs::path> files;
  const fs::path dir = fs::path(STALK_FUZZ_CORPUS_DIR) / target;
  if (!fs::is_directory(dir))
    return files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file())
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FuzzCorpusTest : public ::testing::TestWithParam<FuzzTarget> {};

TEST_P(FuzzCorpusTest, EveryCorpusFileRunsClean) {
  const FuzzTarget& target = GetParam();
  const auto files = CorpusFiles(target.name);
  ASSERT_GE(files.size(), 3u) << "fuzz/corpus/" << target.name << " needs seed inputs";
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    const std::string bytes = ReadFile(f);
    EXPECT_EQ(target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), 0);
  }
}

// Inputs no corpus holds: empty, one byte, NULs, and a long run, through every target.
TEST_P(FuzzCorpusTest, EdgeInputsRunClean) {
  const FuzzTarget& target = GetParam();
  const std::string inputs[] = {"", "\n", std::string(3, '\0'), std::string(100000, '['),
                                std::string("{\"body\": \"") + std::string(5000, 'A')};
  for (const auto& in : inputs) {
    EXPECT_EQ(target.run(reinterpret_cast<const uint8_t*>(in.data()), in.size()), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzCorpusTest, ::testing::ValuesIn(AllTargets().begin(), AllTargets().end()),
                         [](const ::testing::TestParamInfo<FuzzTarget>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace stalk::fuzz
