// Reading checkpoints without a state to restore into (checkpoint.h): every entry of a full or
// sharded checkpoint for Fabric.load(path), and the plain state-dict files of Fabric.load_raw.
#include <filesystem>
#include <string>

#include "runtime/checkpoint.h"
#include "runtime/checkpoint_detail.h"
#include "runtime/sharded_checkpoint.h"
#include "runtime/sharded_checkpoint_reader.h"
#include "tensor/error.h"
#include "tensor/safetensors.h"

namespace fabric {
namespace fs = std::filesystem;
using namespace checkpoint_detail;

namespace {

// The kinds every layout describes alike: a precision plugin's state and the plain values (a
// tensor from `tensors`, the checkpoint's tensors.safetensors).
void fill_plain(CheckpointEntry& out, const std::string& key, const json& e,
                const SafetensorsFile& tensors, const std::string& path) {
  if (out.kind == "precision") {
    out.name = e.value("name", "");
    out.precision_state = precision_state_from(e, path);
    return;
  }
  State one;
  add_plain_remainder(one, key, e, tensors, path);
  if (auto it = one.find(key); it != one.end()) out.value = it->second;
}

SafetensorsFile plain_tensors_of(const std::string& dir) {
  return fs::exists(dir + "/tensors.safetensors") ? load_safetensors(dir + "/tensors.safetensors")
                                                  : SafetensorsFile();
}

Checkpoint read_full(const std::string& path) {
  std::string dir;
  const json meta = read_description(path, dir);
  const SafetensorsFile tensors = plain_tensors_of(dir);
  Checkpoint out;
  for (const auto& [key, e] : meta["entries"].items()) {
    CheckpointEntry& c = out[key];
    c.kind = entry_kind(e, key, dir);
    if (c.kind == "module" || c.kind == "optimizer") {
      SafetensorsFile f = load_safetensors(dir + "/" + key + ".safetensors");
      c.tensors = std::move(f.tensors);
      if (auto n = f.metadata.find("optimizer"); n != f.metadata.end()) c.name = n->second;
    } else {
      fill_plain(c, key, e, tensors, dir);
    }
  }
  return out;
}

Checkpoint read_sharded(const std::string& path) {
  sharded_detail::ShardedReader reader(path);
  const SafetensorsFile tensors = plain_tensors_of(reader.dir());
  Checkpoint out;
  for (const auto& [key, e] : reader.entries().items()) {
    CheckpointEntry& c = out[key];
    c.kind = entry_kind(e, key, reader.dir());
    if (c.kind == "module") {
      for (const auto& [name, t] : reader.module_state(key)) c.tensors.emplace(name, t);
    } else if (c.kind == "optimizer") {
      for (auto& [name, t] : reader.optimizer_state(key).flatten()) c.tensors.emplace(name, t);
      c.name = reader.optimizer_name(key);
    } else {
      fill_plain(c, key, e, tensors, reader.dir());
    }
  }
  return out;
}

// The safetensors file `path` of a raw state; IOError naming it when it is not one.
SafetensorsFile read_raw_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    io_fail(path,
            "is a directory; load_raw reads one state-dict file (a Fabric checkpoint directory "
            "loads with Fabric.load, or pass its <key>.safetensors)");
  if (!fs::exists(path, ec)) io_fail(path, "no such state-dict file");
  return load_safetensors(path);
}

}  // namespace

Checkpoint read_checkpoint_contents(const std::string& path_in) {
  const std::string path = without_trailing_separators(path_in);
  try {
    return is_sharded_checkpoint(path) ? read_sharded(path) : read_full(path);
  } catch (const fs::filesystem_error& e) {
    io_fail(path, e.what());
  } catch (const json::exception& e) {
    io_fail(path, std::string("the checkpoint description is malformed: ") + e.what());
  }
}

std::optional<StateEntry> read_checkpoint_value(const std::string& path_in,
                                                const std::string& key) {
  const std::string path = without_trailing_separators(path_in);
  try {
    std::string dir;
    json entries;
    if (is_sharded_checkpoint(path)) {
      const sharded_detail::ShardedReader reader(path);
      dir = reader.dir();
      entries = reader.entries();
    } else {
      entries = read_description(path, dir)["entries"];
    }
    const auto it = entries.find(key);
    if (it == entries.end()) return std::nullopt;
    const std::string kind = entry_kind(*it, key, dir);
    if (kind != "int" && kind != "float" && kind != "bool" && kind != "string")
      io_fail(dir, "'" + key + "' is a " + kind + ", not a plain value");
    State one;
    add_plain_remainder(one, key, *it, SafetensorsFile(), dir);
    return one.at(key);
  } catch (const fs::filesystem_error& e) {
    io_fail(path, e.what());
  } catch (const json::exception& e) {
    io_fail(path, std::string("the checkpoint description is malformed: ") + e.what());
  }
}

nn::StateDict read_raw_module_state(const std::string& path) {
  nn::StateDict sd;
  for (auto& [name, t] : read_raw_file(path).tensors) sd.insert(name, t);
  return sd;
}

optim::OptimizerState read_raw_optimizer_state(const std::string& path,
                                               const std::string& expected_type) {
  const SafetensorsFile f = read_raw_file(path);
  auto saved = f.metadata.find("optimizer");
  FABRIC_CHECK(saved == f.metadata.end() || saved->second == expected_type, ValueError,
               "Fabric.load_raw: ", path, " holds the state of a ", saved->second,
               " optimizer, but the optimizer passed is a ", expected_type);
  return optim::OptimizerState::unflatten({f.tensors.begin(), f.tensors.end()});
}

}  // namespace fabric
