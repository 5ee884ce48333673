// Stalk — Celery monitoring server.
// libFuzzer's entry point for one fuzzer binary: STALK_FUZZ_ENTRY names the target function
// (fuzz_targets.h), set per binary by fuzz/CMakeLists.txt.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return stalk::fuzz::STALK_FUZZ_ENTRY(data, size);
}
