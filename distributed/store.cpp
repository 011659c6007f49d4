// HashStore and PrefixStore.
#include "distributed/store.h"

#include <algorithm>

#include "tensor/error.h"

namespace fabric::distributed {

namespace {
std::string join_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "'" : ", '") + k + "'";
  return s;
}
}  // namespace

void HashStore::set(const std::string& key, const Bytes& value) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    data_[key] = value;
  }
  cv_.notify_all();
}

Bytes HashStore::get(const std::string& key) {
  wait({key}, timeout());
  std::lock_guard<std::mutex> lock(mu_);
  return data_.at(key);
}

int64_t HashStore::add(const std::string& key, int64_t delta) {
  int64_t value = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = data_.find(key);
    if (it != data_.end()) value = std::stoll(std::string(it->second.begin(), it->second.end()));
    value += delta;
    const std::string s = std::to_string(value);
    data_[key] = Bytes(s.begin(), s.end());
  }
  cv_.notify_all();
  return value;
}

void HashStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto all_there = [&] {
    return std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return data_.count(k) > 0; });
  };
  if (!cv_.wait_for(lock, timeout, all_there)) {
    std::vector<std::string> missing;
    for (const auto& k : keys)
      if (!data_.count(k)) missing.push_back(k);
    throw TimeoutError("HashStore.wait: timed out after " + std::to_string(timeout.count()) +
                       " ms waiting for key(s) " + join_keys(missing));
  }
}

bool HashStore::check(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  return std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return data_.count(k) > 0; });
}

PrefixStore::PrefixStore(std::string prefix, std::shared_ptr<Store> store)
    : prefix_(std::move(prefix)), store_(std::move(store)) {
  FABRIC_CHECK(store_ != nullptr, ValueError, "PrefixStore('", prefix_, "'): the underlying store is null");
  timeout_ = store_->timeout();
}

std::vector<std::string> PrefixStore::ks(const std::vector<std::string>& keys) const {
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const auto& key : keys) out.push_back(k(key));
  return out;
}

void PrefixStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  store_->wait(ks(keys), timeout);
}

bool PrefixStore::check(const std::vector<std::string>& keys) { return store_->check(ks(keys)); }

}  // namespace fabric::distributed
