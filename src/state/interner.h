// Stalk — Celery monitoring server.
// Interner: string <-> dense uint32 id, for task names, hostnames, queues. Ids are never reused, so a
// metric series or a Task can hold an id without a lifetime question. Not thread-safe (state's lock).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "state/task.h"

namespace stalk {

class Interner {
 public:
  uint32_t Intern(std::string_view s) {
    if (auto it = index_.find(s); it != index_.end()) {
      return it->second;
    }
    const auto id = static_cast<uint32_t>(strings_.size());
    strings_.emplace_back(s);
    index_.emplace(strings_.back(), id);  // deque: the view stays valid as it grows
    return id;
  }
  // kNoId when unknown.
  uint32_t Find(std::string_view s) const {
    auto it = index_.find(s);
    return it == index_.end() ? kNoId : it->second;
  }
  std::string_view Get(uint32_t id) const { return id < strings_.size() ? strings_[id] : std::string_view(); }
  size_t size() const { return strings_.size(); }

 private:
  std::deque<std::string> strings_;
  absl::flat_hash_map<std::string_view, uint32_t> index_;
};

}  // namespace stalk
