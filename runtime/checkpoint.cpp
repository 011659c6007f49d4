// Checkpoint directories for Fabric::save / Fabric::load (layout in checkpoint.h).
#include "runtime/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "runtime/checkpoint_detail.h"
#include "runtime/sharded_checkpoint_reader.h"
#include "runtime/train_config.h"
#include "tensor/safetensors.h"
#include "tensor/warning.h"
#include "tensor/write_target.h"

namespace fabric {
namespace fs = std::filesystem;
using nlohmann::json;

namespace checkpoint_detail {

[[noreturn]] void io_fail(const std::string& path, const std::string& what) {
  throw IOError("checkpoint " + path + ": " + what);
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) io_fail(path, std::string("cannot open to sync: ") + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != EROFS) io_fail(path, std::string("fsync failed: ") + std::strerror(err));
}

void finish_directory(const std::string& tmp, const std::string& file, const json& meta, int indent,
                      const std::string& path) {
  std::string text;
  try {
    text = meta.dump(indent);
  } catch (const json::exception& e) {  // describe_entries checks every string: a bug if reached
    throw ValueError("Fabric.save: the checkpoint description cannot be written as JSON (" + std::string(e.what()) +
                     "); nothing was written to " + path);
  }
  text += "\n";
  {
    // POSIX calls, not a stream, so that the cause (a full disk, a file-size limit) is said.
    const std::string target = tmp + "/" + file;
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) io_fail(path, "cannot write " + file + ": " + std::strerror(errno));
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        ::close(fd);
        io_fail(path, "cannot write " + file + ": " + std::strerror(err));
      }
      done += static_cast<size_t>(n);
    }
    if (::close(fd) != 0) io_fail(path, "cannot write " + file + ": " + std::strerror(errno));
  }
  fsync_path(tmp + "/" + file, false);
  fsync_path(tmp, true);
  commit_directory(tmp, path);
}

json read_description(const std::string& path_in, std::string& path) {
  path = path_in;
  const std::string old = sibling_named(path, ".old");
  if (!fs::exists(path + "/state.json") && fs::exists(old + "/state.json")) path = old;
  std::ifstream in(path + "/state.json");
  if (!in) io_fail(path_in, "no state.json there (not a Fabric checkpoint directory, or missing)");
  json meta;
  try {
    meta = json::parse(in);
  } catch (const std::exception& e) {
    io_fail(path, std::string("state.json is not valid JSON: ") + e.what());
  }
  // Compared as JSON values: a field of another type (or a top-level array) is no description,
  // not a JSON type error.
  if (!meta.is_object() || !meta.contains("format") || meta["format"] != kFormat ||
      !meta.contains("entries") || !meta["entries"].is_object())
    io_fail(path, std::string("state.json is not a fabric checkpoint description (expected an "
                              "object with format \"") +
                      kFormat + "\" and an object of entries)");
  // A layout this build does not know (a newer fabric's) was read as if it were version 1. A
  // description without a version is read as before.
  if (meta.contains("version") && meta["version"] != kVersion)
    io_fail(path, "state.json has version " + meta["version"].dump() +
                      "; this build reads version " + std::to_string(kVersion) +
                      " (was it written by a newer fabric, or edited?)");
  return meta;
}

std::string without_trailing_separators(const std::string& path) {
  std::string p = path;
  for (;;) {
    if (p.size() > 1 && p.back() == '/')
      p.pop_back();
    else if (p.size() > 2 && p.ends_with("/."))  // "ckpt/." is ckpt too
      p.resize(p.size() - 2);
    else
      return p;
  }
}

void check_key(const std::string& key) {
  check_utf8(key, "state key '" + printable(key) + "'");
  // A NUL ends the file name the system sees: "m\0a" and "m\0b" would both write m.safetensors.
  FABRIC_CHECK(!key.empty() && key.find('/') == std::string::npos &&
                   key.find('\0') == std::string::npos && key != "." && key != "..",
               ValueError, "Fabric.save: state key '", printable(key),
               "' is not usable as a file name (empty, '.', '..' or holds '/' or a NUL byte)");
  FABRIC_CHECK(key != "tensors" && key != "state", ValueError, "Fabric.save: state key '", key,
               "' is reserved (the checkpoint's tensors.safetensors / state.json); rename it");
}

namespace {

// A precision plugin's state under `key`: its name and fields, each checked as text.
json describe_precision(const precision::Precision& p, const std::string& key) {
  const std::string name = p.name();
  check_utf8(name, "the name of the precision plugin in state['" + key + "']");
  json s = json::object();
  for (const auto& [k, sv] : p.state_dict()) {
    const std::string field = "state['" + key + "'] (the precision plugin's state) field '" + printable(k) + "'";
    check_utf8(k, field);
    s[k] = value_to_json(sv, field);
  }
  return {{"kind", "precision"}, {"name", name}, {"state", s}};
}

}  // namespace

json describe_entries(const State& state, const precision::Precision* precision,
                      std::vector<std::pair<std::string, Tensor>>& tensors) {
  json entries = json::object();
  bool has_precision = false;
  for (const auto& [key, entry] : state) {
    check_key(key);
    json e = {{"kind", entry.kind()}};
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, Tensor>) {
            FABRIC_CHECK(v.defined(), ValueError, "Fabric.save: state['", key, "'] is an undefined tensor");
            tensors.emplace_back(key, v);
          } else if constexpr (std::is_same_v<V, precision::Precision*>) {
            e = describe_precision(*v, key);
            has_precision = true;
          } else if constexpr (!std::is_pointer_v<V>) {
            e["value"] = value_to_json(precision::StateValue(v), "state['" + key + "']");
          }
        },
        entry.value());
    entries[key] = e;
  }
  if (precision && !has_precision && !state.count("precision"))
    entries["precision"] = describe_precision(*precision, "precision");
  return entries;
}

precision::PrecisionState precision_state_from(const json& e, const std::string& path) {
  precision::PrecisionState s;
  auto fields = e.find("state");
  if (fields == e.end()) return s;
  if (!fields->is_object()) io_fail(path, "the precision entry's \"state\" is not an object of named values");
  for (const auto& [k, v] : fields->items()) s[k] = value_from_json(v, "the precision state's '" + k + "'", path);
  return s;
}

void check_strict_keys(const State& state, const json& entries, bool strict, const std::string& path) {
  for (const auto& [key, entry] : state) {
    const bool implicit_precision = std::holds_alternative<precision::Precision*>(entry.value());
    if (strict && !entries.contains(key) && !implicit_precision)
      throw KeyError("Fabric.load: '" + key + "' is not in the checkpoint " + path + " (it holds: " + [&] {
        std::string ks;
        for (const auto& [k, v] : entries.items()) ks += (ks.empty() ? "" : ", ") + k;
        return ks;
      }() + ")");
  }
}

void check_kind(const StateEntry& target, const std::string& key, const std::string& kind) {
  FABRIC_CHECK(target.kind() == kind || (kind == "int" && target.kind() == "float"), ValueError,
               "Fabric.load: '", key, "' is a ", kind, " in the checkpoint but a ", target.kind(),
               " in the state passed to load");
}

void restore_plain(StateEntry& target, const std::string& key, const json& e, const SafetensorsFile& tensor_file,
                   const std::string& path, std::vector<std::string>* warnings) {
  std::visit(
      [&](auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, nn::Module*> || std::is_same_v<V, optim::Optimizer*>) {
          throw ValueError("Fabric.load: '" + key + "' is a " + target.kind() + ", not a plain value");
        } else if constexpr (std::is_same_v<V, precision::Precision*>) {
          restore_precision_state(*v, e, path, warnings);
        } else if constexpr (std::is_same_v<V, Tensor>) {
          auto t = tensor_file.tensors.find(key);
          if (t == tensor_file.tensors.end()) io_fail(path, "tensors.safetensors lacks '" + key + "'");
          v = t->second.clone();
        } else {
          // check_kind let only an int into a float besides the same kind.
          const precision::StateValue sv = plain_value(e, key, entry_kind(e, key, path), path);
          if constexpr (std::is_same_v<V, double>) {
            v = std::holds_alternative<int64_t>(sv) ? double(std::get<int64_t>(sv)) : std::get<double>(sv);
          } else {
            v = std::get<V>(sv);
          }
        }
      },
      target.value());
}

// Adds `key` to the remainder, which is flat: an unrequested module's or optimizer's tensors come
// back as "<entry>.<name>", and a plain entry of that very name would otherwise be lost.
void add_to_remainder(State& remainder, const std::string& key, StateEntry value,
                      const std::string& path) {
  FABRIC_CHECK(remainder.emplace(key, std::move(value)).second, ValueError, "Fabric.load: ", path,
               " has two entries that come back under one remainder key '", key,
               "' (a module's or optimizer's flattened tensor and another entry); pass the "
               "module or optimizer in the state to load it instead");
}

void add_plain_remainder(State& remainder, const std::string& key, const json& e, const SafetensorsFile& tensor_file,
                         const std::string& path) {
  const std::string kind = entry_kind(e, key, path);
  if (kind == "tensor") {
    auto t = tensor_file.tensors.find(key);
    if (t == tensor_file.tensors.end())
      io_fail(path, "tensors.safetensors lacks '" + key + "' (the description lists it as a tensor)");
    add_to_remainder(remainder, key, t->second, path);
  } else if (kind == "int" || kind == "float" || kind == "bool" || kind == "string") {
    const precision::StateValue v = plain_value(e, key, kind, path);
    std::visit([&](const auto& x) { add_to_remainder(remainder, key, x, path); }, v);
  }
}

namespace {

// Whether `file` is a JSON object whose "format" is `format`: what tells a fabric checkpoint's
// description from a file that merely has its name (a dataset's meta.json).
bool json_with_format(const std::string& file, const char* format) {
  std::ifstream in(file);
  if (!in) return false;
  const json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("format") && j["format"] == format;
}

}  // namespace

void check_replaceable(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  if (!fs::is_directory(path, ec))
    io_fail(path, "exists and is not a directory; a checkpoint is a directory");
  if (fs::is_empty(path, ec) || json_with_format(path + "/state.json", kFormat) ||
      json_with_format(path + "/meta.json", sharded_detail::kShardedFormat))
    return;
  io_fail(path,
          "exists and holds something other than a checkpoint (no state.json or meta.json in "
          "fabric's format), which saving would delete; choose a new path, an earlier "
          "checkpoint or an empty folder");
}

void check_not_a_checkpoint_file(const std::string& out_file, const std::string& command) {
  std::error_code ec;
  // Nothing to name a file by: a bad command line, said as such (the write failed later, naming a
  // temporary file's rename).
  if (out_file.empty())
    throw ConfigError(command + ": the output path is empty; expected a file path");
  if (fs::is_directory(out_file, ec)) return;
  // A new file counts too: the next save of that checkpoint replaces its folder whole, and the
  // file with it.
  const fs::path folder = fs::absolute(out_file).lexically_normal().parent_path();
  if (fs::exists(folder / "state.json", ec) || fs::exists(folder / "meta.json", ec))
    throw ValueError(command + ": " + out_file +
                     (fs::exists(out_file, ec) ? " is a file of the checkpoint "
                                               : " would be a file inside the checkpoint ") +
                     folder.string() +
                     ", which writing there would damage or a later save would delete; choose a "
                     "path outside the checkpoint");
  // A run directory's own files (resume reads config.yaml and vocab.json; metrics.csv is the run's
  // log): replacing one with weights would leave the run unresumable.
  const fs::path name = fs::path(out_file).filename();
  if ((name == "config.yaml" || name == "vocab.json" || name == "metrics.csv") &&
      fs::exists(folder / "config.yaml", ec) && fs::is_directory(folder / "checkpoints", ec))
    throw ValueError(command + ": " + out_file + " is the run directory " + folder.string() +
                     "'s " + name.string() +
                     ", which resume and the run's logs need; choose another path");
}

namespace {

// Once the new checkpoint is in place the save has succeeded: the previous one's removal is best
// effort (a file of it held open on NFS, an immutable file), a warning naming what is left rather
// than a failed save that stops the run. The next save into the same place replaces it again.
// What is left is moved out of the temporary's name (the next save of `path` reuses that name),
// under one the stale-temporary cleanup leaves alone.
void remove_previous(const std::string& previous, const std::string& path) {
  std::error_code ec;
  fs::remove_all(previous, ec);
  if (!ec) return;
  const std::string why = ec.message();
  std::string kept = previous;
  for (int n = 0; n < 1000; ++n) {
    const std::string name =
        sibling_named(path, ".unremovable-" + std::to_string(::getpid()) + "-" + std::to_string(n));
    if (fs::exists(name, ec)) continue;
    fs::rename(previous, name, ec);
    if (!ec) kept = name;
    break;
  }
  warn("checkpoint " + path + " was saved, but its previous copy could not be removed (" + why +
       "); it is left as " + kept + ": remove it by hand");
}

}  // namespace

void commit_directory(const std::string& tmp, const std::string& path) {
  const std::string parent = fs::absolute(path).parent_path().string();
  if (fs::exists(path)) {
    check_replaceable(path);
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) == 0) {
      fsync_path(parent, true);
      remove_previous(tmp, path);  // tmp is now the previous checkpoint
      return;
    }
    // No atomic exchange here: move the old one aside first; load() falls back to it if a crash
    // lands between the two renames.
    const std::string old = sibling_named(path, ".old");
    fs::remove_all(old);
    fs::rename(path, old);
    fs::rename(tmp, path);
    fsync_path(parent, true);
    remove_previous(old, path);
    return;
  }
  fs::rename(tmp, path);
  fsync_path(parent, true);
}

}  // namespace checkpoint_detail

using namespace checkpoint_detail;

namespace {

std::vector<std::pair<std::string, Tensor>> items_of(const SafetensorsFile& f) {
  return {f.tensors.begin(), f.tensors.end()};
}

// The directory write itself; save_checkpoint adds the path clean-up and the error translation.
void write_checkpoint(const std::string& path, const State& state,
                      const precision::Precision* precision,
                      const OptimizerStateSource& optimizer_state,
                      const ModuleStateSource& module_state, const SaveFilters& filters) {
  json meta = {{"format", kFormat}, {"version", kVersion}};
  std::vector<std::pair<std::string, Tensor>> tensors;
  json entries = describe_entries(state, precision, tensors);

  const fs::path target = fs::absolute(path);
  check_replaceable(target.string());  // before any work: commit_directory checks again
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) io_fail(path, "cannot create the parent directory: " + ec.message());
  const std::string tmp = temporary_sibling(target.string(), ".tmp-");
  fs::remove_all(tmp, ec);
  // An earlier copy under this name that would not go: never write into it.
  if (fs::exists(tmp))
    io_fail(path, "the temporary directory " + tmp +
                      " is left from an earlier save and cannot be " + "removed (" +
                      (ec ? ec.message() : std::string("unknown cause")) + ")");
  fs::create_directory(tmp, ec);
  if (ec) io_fail(path, "cannot create the temporary directory " + tmp + ": " + ec.message());
  try {
    for (const auto& [key, entry] : state) {
      std::vector<std::pair<std::string, Tensor>> items;
      std::map<std::string, std::string> file_metadata;
      if (auto* m = std::get_if<nn::Module*>(&entry.value())) {
        const nn::StateDict sd = module_state ? module_state(**m) : (*m)->state_dict();
        items.assign(sd.begin(), sd.end());
      } else if (auto* o = std::get_if<optim::Optimizer*>(&entry.value())) {
        const optim::OptimizerState sd = optimizer_state ? optimizer_state(**o) : (*o)->state_dict();
        items = sd.flatten();
        file_metadata = {{"optimizer", (*o)->name()}};
      } else {
        continue;
      }
      // An optimizer's param groups are always kept, as the sharded layout keeps them: without
      // them no optimizer loads the checkpoint.
      std::vector<std::pair<std::string, Tensor>> groups;
      if (std::holds_alternative<optim::Optimizer*>(entry.value())) {
        for (auto& item : items)
          if (item.first.starts_with("param_groups.")) groups.push_back(item);
        std::erase_if(items, [](const auto& i) { return i.first.starts_with("param_groups."); });
      }
      items = apply_save_filter(key, std::move(items), filters);
      items.insert(items.end(), groups.begin(), groups.end());
      // A filter that keeps nothing leaves the entry out, as the reference's _apply_filter does.
      if (items.empty() && filters.count(key)) {
        entries.erase(key);
        continue;
      }
      save_safetensors(tmp + "/" + key + ".safetensors", items, file_metadata);
    }
    meta["entries"] = entries;
    if (!tensors.empty()) save_safetensors(tmp + "/tensors.safetensors", tensors);
    finish_directory(tmp, "state.json", meta, 2, target.string());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

State read_checkpoint(const std::string& path_in, State& state, precision::Precision* precision, bool strict,
                      const OptimizerStateSink& load_optimizer, const ModuleStateSink& load_module,
                      std::vector<std::string>* warnings) {
  std::string path;
  const json meta = read_description(path_in, path);
  const json& entries = meta["entries"];
  check_strict_keys(state, entries, strict, path_in);
  SafetensorsFile tensor_file;
  if (fs::exists(path + "/tensors.safetensors")) tensor_file = load_safetensors(path + "/tensors.safetensors");
  auto file_of = [&](const std::string& key) { return load_safetensors(path + "/" + key + ".safetensors"); };
  // Every entry's kind is checked before anything is restored, and the precision state (a scaler,
  // whose load validates its values) goes first: a checkpoint refused there leaves the model and
  // optimizer as they were.
  std::vector<std::tuple<std::string, std::string, const json*>> order;
  for (const auto& [key, e] : entries.items()) order.emplace_back(key, entry_kind(e, key, path), &e);
  std::stable_partition(order.begin(), order.end(), [](const auto& o) { return std::get<1>(o) == "precision"; });
  // An optimizer's file is read while checking, so that another optimizer type's state (Adam's
  // moments offered to SGD) is refused before anything is restored; it is then restored from there.
  std::map<std::string, SafetensorsFile> optimizer_files;
  for (const auto& [key, kind, entry] : order) {
    auto it = state.find(key);
    if (it == state.end()) continue;
    check_kind(it->second, key, kind);
    if (auto* o = std::get_if<optim::Optimizer*>(&it->second.value())) {
      SafetensorsFile f = file_of(key);
      auto saved = f.metadata.find("optimizer");
      FABRIC_CHECK(saved == f.metadata.end() || saved->second == (*o)->name(), ValueError,
                   "Fabric.load: '", key, "' holds the state of a ", saved->second,
                   " optimizer in ", path_in, ", but the optimizer passed is a ", (*o)->name());
      optimizer_files.emplace(key, std::move(f));
    }
  }
  State remainder;
  for (const auto& [key, kind, entry] : order) {
    const json& e = *entry;
    auto it = state.find(key);
    if (it == state.end() && kind == "precision" && precision) {
      restore_precision_state(*precision, e, path_in, warnings);  // the plugin's state, restored by default
      continue;
    }
    if (it == state.end()) {
      if (kind == "module" || kind == "optimizer") {
        for (auto& [name, t] : file_of(key).tensors)
          add_to_remainder(remainder, key + "." + name, t, path_in);
      } else {
        add_plain_remainder(remainder, key, e, tensor_file, path);
      }
      continue;
    }
    StateEntry& target = it->second;
    std::visit(
        [&](auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, nn::Module*>) {
            SafetensorsFile f = file_of(key);
            nn::StateDict sd;
            for (auto& [name, t] : f.tensors) sd.insert(name, t);
            if (load_module) {
              load_module(*v, sd, strict);
            } else {
              v->load_state_dict(sd, strict);
            }
          } else if constexpr (std::is_same_v<V, optim::Optimizer*>) {
            const optim::OptimizerState sd =
                optim::OptimizerState::unflatten(items_of(optimizer_files.at(key)));
            if (load_optimizer) {
              load_optimizer(*v, sd);
            } else {
              v->load_state_dict(sd);
            }
          } else {
            restore_plain(target, key, e, tensor_file, path, warnings);
          }
        },
        target.value());
  }
  return remainder;
}

}  // namespace

std::string StateEntry::kind() const {
  static const char* names[] = {"module", "optimizer", "precision", "tensor", "int", "float", "bool", "string"};
  return names[value_.index()];
}

void save_checkpoint(const std::string& path, const State& state,
                     const precision::Precision* precision,
                     const OptimizerStateSource& optimizer_state,
                     const ModuleStateSource& module_state, const SaveFilters& filters) {
  FABRIC_CHECK(!path.empty(), ValueError, "Fabric.save: the path is empty");
  check_save_filters(state, filters);
  // "ckpt/" is the directory ckpt: its temporary sibling must not land inside it.
  const std::string dir = without_trailing_separators(path);
  try {
    write_checkpoint(dir, state, precision, optimizer_state, module_state, filters);
  } catch (const fs::filesystem_error& e) {
    io_fail(dir, e.what());
  }
}

void check_savable(const State& state) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  (void)describe_entries(state, nullptr, tensors);
}

State load_checkpoint(const std::string& path, State& state, precision::Precision* precision, bool strict,
                      const OptimizerStateSink& load_optimizer, const ModuleStateSink& load_module,
                      std::vector<std::string>* warnings) {
  const std::string dir = without_trailing_separators(path);
  try {
    return read_checkpoint(dir, state, precision, strict, load_optimizer, load_module, warnings);
  } catch (const fs::filesystem_error& e) {
    io_fail(dir, e.what());
  } catch (const json::exception& e) {
    // What the targeted checks above missed: still a malformed file, never a JSON library error.
    io_fail(dir, std::string("state.json is malformed: ") + e.what());
  }
}

}  // namespace fabric
