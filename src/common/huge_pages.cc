// Stalk — Celery monitoring server.
#include "common/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

// Under ASan, LSan and TSan the blocks come from malloc instead of mmap: the sanitizers then see
// them (bounds, races), and LeakSanitizer scans them for the pointers they hold (the task strings),
// which it never does in memory mapped behind its back.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STALK_HUGE_FROM_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define STALK_HUGE_FROM_MALLOC 1
#endif
#endif

namespace stalk {
namespace {

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace

void* AllocateHuge(size_t bytes) {
  const size_t size = RoundUp(bytes == 0 ? 1 : bytes, kHugePageBytes);
#ifdef STALK_HUGE_FROM_MALLOC
  void* block = std::aligned_alloc(kHugePageBytes, size);
  if (block == nullptr) {
    throw std::bad_alloc();
  }
  std::memset(block, 0, size);
  return block;
#else
  // Over-map by one huge page, then trim to a 2 MiB-aligned range: mmap itself only aligns to 4 KiB,
  // and THP backs only aligned 2 MiB ranges.
  const size_t mapped = size + kHugePageBytes;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    throw std::bad_alloc();
  }
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = RoundUp(start, kHugePageBytes);
  if (aligned > start) {
    munmap(raw, aligned - start);
  }
  const uintptr_t end = aligned + size;
  if (start + mapped > end) {
    munmap(reinterpret_cast<void*>(end), start + mapped - end);
  }
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, size, MADV_HUGEPAGE);  // advisory: without THP the pages are ordinary ones
  return p;
#endif
}

void FreeHuge(void* p, size_t bytes) noexcept {
#ifdef STALK_HUGE_FROM_MALLOC
  (void)bytes;
  std::free(p);
#else
  if (p) {
    munmap(p, RoundUp(bytes == 0 ? 1 : bytes, kHugePageBytes));
  }
#endif
}

}  // namespace stalk
