// An LRU cache of kernel plans (compiled oneDNN primitives and what runs them) keyed by problem,
// shared by every thread that runs kernels. A plan is made outside the lock, since JIT compilation
// takes milliseconds; when two threads race on one key, the first plan inserted wins and both
// count as misses. The capacity bounds the JIT code a shape sweep can hold.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace fabric::cpu {

struct PlanCacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t entries = 0;
};

template <typename Key, typename Plan, typename Hash>
class PlanCache {
 public:
  explicit PlanCache(size_t capacity) : capacity_(capacity) {}

  // The plan for k, made by make(k) on a miss.
  template <typename Make>
  std::shared_ptr<Plan> get(const Key& k, const Make& make) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(k);
      if (it != map_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        ++hits_;
        return it->second->second;
      }
      ++misses_;
    }
    std::shared_ptr<Plan> plan = make(k);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(k);
    if (it != map_.end()) return it->second->second;
    lru_.emplace_front(k, plan);
    map_.emplace(k, lru_.begin());
    while (lru_.size() > capacity_) {
      map_.erase(lru_.back().first);
      lru_.pop_back();
    }
    return plan;
  }

  PlanCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {hits_, misses_, static_cast<uint64_t>(map_.size())};
  }

  // Drops every plan and zeroes the counters.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
    lru_.clear();
    hits_ = misses_ = 0;
  }

 private:
  using Entry = std::pair<Key, std::shared_ptr<Plan>>;
  const size_t capacity_;
  std::mutex mu_;
  std::list<Entry> lru_;
  std::unordered_map<Key, typename std::list<Entry>::iterator, Hash> map_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace fabric::cpu
