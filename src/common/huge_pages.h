// Stalk — Celery monitoring server.
// Large allocations backed by transparent huge pages where the kernel offers them (`madvise` mode,
// Debian's default): one page fault per 2 MiB instead of 512. The state's task chunks and uuid index
// are first touched while restoring history and while ingesting, where 4 KiB faults were the largest
// single cost (a sixth of start-up CPU, more under a hypervisor). Without THP this is plain mmap.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <utility>

namespace stalk {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Zero-filled, 2 MiB-aligned memory of `bytes` rounded up to 2 MiB; throws std::bad_alloc.
void* AllocateHuge(size_t bytes);
void FreeHuge(void* p, size_t bytes) noexcept;

// `n` value-initialised Ts in AllocateHuge memory; movable, not copyable.
template <class T>
class HugeArray {
 public:
  HugeArray() = default;
  explicit HugeArray(size_t n) : data_(static_cast<T*>(AllocateHuge(n * sizeof(T)))), size_(n) {
    std::uninitialized_value_construct_n(data_, n);
  }
  HugeArray(HugeArray&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  HugeArray& operator=(HugeArray&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  HugeArray(const HugeArray&) = delete;
  HugeArray& operator=(const HugeArray&) = delete;
  ~HugeArray() { Release(); }

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return size_; }

 private:
  void Release() noexcept {
    if (data_) {
      std::destroy_n(data_, size_);
      FreeHuge(data_, size_ * sizeof(T));
      data_ = nullptr;
      size_ = 0;
    }
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

// For containers that grow large (hash indexes): requests of 2 MiB or more go to AllocateHuge,
// smaller ones to std::allocator.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)

  T* allocate(size_t n) {
    if (n * sizeof(T) >= kHugePageBytes) {
      return static_cast<T*>(AllocateHuge(n * sizeof(T)));
    }
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) >= kHugePageBytes) {
      FreeHuge(p, n * sizeof(T));
    } else {
      std::allocator<T>().deallocate(p, n);
    }
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace stalk
