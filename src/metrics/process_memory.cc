// Stalk — Celery monitoring server.
#include "metrics/process_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <string_view>

namespace stalk {

std::optional<uint64_t> ResidentMemoryBytes() {
  // statm: "size resident shared text lib data dt", in pages. One read(2), no stdio.
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n <= 0) {
    return std::nullopt;
  }
  std::string_view text(buf, static_cast<size_t>(n));
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  text.remove_prefix(space + 1);
  uint64_t pages = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), pages);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (ec != std::errc() || page_size <= 0) {
    return std::nullopt;
  }
  return pages * static_cast<uint64_t>(page_size);
}

}  // namespace stalk
