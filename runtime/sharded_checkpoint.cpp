// Sharded checkpoints (layout in sharded_checkpoint.h): every rank writes its pieces in parallel,
// rank 0 describes them in meta.json and commits; loading reads only the overlapping pieces.
#include "runtime/sharded_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "nn/parameter_names.h"
#include "runtime/checkpoint_detail.h"
#include "runtime/sharded_checkpoint_reader.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/write_target.h"

namespace fabric {
namespace fs = std::filesystem;
using namespace checkpoint_detail;
using sharded_detail::json;
using sharded_detail::ShardedReader;

namespace {

// ---- errors every rank sees alike ------------------------------------------------------------
//
// A rank that fails while the others wait in a collective would leave them hanging: failures are
// exchanged as strings (a class tag, then the message) and every rank throws the same error.

std::string encode_error(const std::exception& e) {
  const char tag = dynamic_cast<const ValueError*>(&e) ? 'V' : dynamic_cast<const KeyError*>(&e) ? 'K' : 'I';
  return std::string(1, tag) + e.what();
}

[[noreturn]] void throw_encoded(const std::string& s, const std::string& where) {
  const std::string msg = where + s.substr(1);
  if (s[0] == 'V') throw ValueError(msg);
  if (s[0] == 'K') throw KeyError(msg);
  throw IOError(msg);
}

std::string broadcast_string(const distributed::Strategy& strategy, const std::string& s) {
  const distributed::Bytes b = strategy.broadcast(distributed::Bytes(s.begin(), s.end()), 0);
  return {b.begin(), b.end()};
}

// Every rank's string, on every rank.
std::vector<std::string> all_gather_strings(const distributed::Strategy& strategy, const std::string& s) {
  const int n = strategy.world_size();
  if (n == 1 || !strategy.process_group()) return {s};
  const Tensor lengths = strategy.all_gather(from_vector<int64_t>({int64_t(s.size())}, {1}));  // (n, 1)
  Tensor mine = empty({int64_t(s.size()) + 1}, {.dtype = DType::uint8});  // + 1: never empty
  std::copy(s.begin(), s.end(), mine.data<uint8_t>());
  mine.data<uint8_t>()[s.size()] = 0;
  const Tensor all = strategy.all_gather_uneven(mine);
  const uint8_t* p = all.data<uint8_t>();
  std::vector<std::string> out;
  for (int r = 0; r < n; ++r) {
    const int64_t len = lengths.data<int64_t>()[r];
    out.emplace_back(reinterpret_cast<const char*>(p), size_t(len));
    p += len + 1;
  }
  return out;
}

// ---- what each rank writes ----------------------------------------------------------------------

struct Pieces {
  std::vector<std::pair<std::string, Tensor>> items;  // rank file key -> 1-D data
  json described = json::array();                     // [{e, n, s, d, o, c, el}]

  void add(const std::string& entry, const std::string& name, const Shape& shape, int64_t offset, const Tensor& data,
           bool element) {
    const Tensor flat = data.reshape({-1});
    if (flat.numel() == 0) return;
    items.emplace_back(sharded_detail::piece_key(entry, name, offset), flat);
    json d = {{"e", entry}, {"n", name}, {"s", shape}, {"d", std::string(dtype_name(flat.dtype()))},
              {"o", offset}, {"c", flat.numel()}};
    if (element) d["el"] = true;
    described.push_back(std::move(d));
  }
  // A tensor that is written whole (by rank 0), empty ones included (they have no pieces).
  void add_whole(const std::string& entry, const std::string& name, const Tensor& t, bool element) {
    add(entry, name, t.sizes(), 0, t.detach(), element);
    if (t.numel() == 0)
      described.push_back({{"e", entry}, {"n", name}, {"s", t.sizes()}, {"d", std::string(dtype_name(t.dtype()))},
                           {"o", 0}, {"c", 0}});
  }
};

// This rank's pieces of every module and optimizer of `state` that `filters` keep; rank 0 also
// describes the optimizers' groups in `entries`.
Pieces collect_pieces(const State& state, const distributed::Strategy& strategy, json& entries,
                      const SaveFilters& filters) {
  const bool rank0 = strategy.global_rank() == 0;
  Pieces out;
  for (const auto& [key, entry] : state) {
    auto filter = filters.find(key);
    auto keep = [&](const std::string& name, const Tensor& t) {
      return filter == filters.end() || filter->second(name, t);
    };
    if (auto* m = std::get_if<nn::Module*>(&entry.value())) {
      if (auto* fsdp = strategy.sharded_module(**m)) {
        // A piece is stored under one of its tensor's names; the filter keeping any of them (a
        // tied lm_head.weight, recorded as an alias) keeps it, as the full layout would.
        std::map<std::string, std::vector<std::string>> tied;
        if (filter != filters.end())
          for (const auto& [impl, ns] : nn::parameter_names_by_tensor(**m))
            for (const auto& n : ns) tied[n] = ns;
        auto keep_any = [&](const std::string& name, const Tensor& t) {
          if (keep(name, t)) return true;
          const auto it = tied.find(name);
          return it != tied.end() && std::any_of(it->second.begin(), it->second.end(),
                                                 [&](const std::string& n) { return keep(n, t); });
        };
        for (const auto& p : fsdp->local_state_pieces())
          if (keep_any(p.name, p.data)) out.add(key, p.name, p.shape, p.offset, p.data, false);
      } else if (rank0) {
        for (const auto& [name, t] : (*m)->state_dict())
          if (keep(name, t)) out.add_whole(key, name, t, false);
      }
    } else if (auto* o = std::get_if<optim::Optimizer*>(&entry.value())) {
      optim::OptimizerState groups;
      if (auto* fsdp = strategy.sharded_module_for(**o)) {
        auto op = fsdp->local_optimizer_pieces(**o);
        for (const auto& p : op.pieces)
          if (keep("state." + p.name, p.data))
            out.add(key, "state." + p.name, p.shape, p.offset, p.data, true);
        if (rank0)
          for (const auto& [index, st] : op.scalars.state)
            for (const auto& [k, t] : st) {
              const std::string name = "state." + std::to_string(index) + "." + k;
              if (keep(name, t)) out.add_whole(key, name, t, false);
            }
        groups.param_groups = std::move(op.scalars.param_groups);
      } else if (rank0) {
        // Whole, from rank 0; per-element tensors (shaped like their parameter) are marked so that a
        // sharded optimizer loading this cuts them.
        optim::OptimizerState sd = (*o)->state_dict();
        const std::vector<Tensor> params = (*o)->parameters();
        for (const auto& [index, st] : sd.state)
          for (const auto& [k, t] : st) {
            const bool element = k != "step" && index < int64_t(params.size()) && t.sizes() == params[size_t(index)].sizes();
            const std::string name = "state." + std::to_string(index) + "." + k;
            if (keep(name, t)) out.add_whole(key, name, t, element);
          }
        groups.param_groups = std::move(sd.param_groups);
      }
      if (rank0) {
        json gs = json::array();
        for (const auto& g : groups.param_groups)
          gs.push_back({{"options", sharded_detail::hyper_params_to_json(g.options)}, {"params", g.params}});
        entries[key]["param_groups"] = gs;
        entries[key]["optimizer"] = (*o)->name();
      }
    }
  }
  return out;
}

// Rank 0: merges every rank's piece descriptions into the entries' "tensors", checking that the
// ranks agree on each tensor's shape and dtype.
void merge_pieces(json& entries, const std::vector<std::string>& described) {
  for (size_t r = 0; r < described.size(); ++r) {
    const json pieces = json::parse(described[r]);  // named: the loop must not outlive it
    for (const json& d : pieces.at("pieces")) {
      json& t = entries[d["e"].get<std::string>()]["tensors"][d["n"].get<std::string>()];
      if (t.is_null()) {
        t = {{"shape", d["s"]}, {"dtype", d["d"]}, {"pieces", json::array()}};
        if (d.value("el", false)) t["element"] = true;
      }
      FABRIC_CHECK(t["shape"] == d["s"] && t["dtype"] == d["d"], ValueError, "Fabric.save (sharded): rank ", r,
                   " holds '", d["e"].get<std::string>(), "' tensor '", d["n"].get<std::string>(), "' as ",
                   d["s"].dump(), " ", d["d"].dump(), " but another rank as ", t["shape"].dump(), " ", t["dtype"].dump());
      if (d["c"].get<int64_t>() > 0) t["pieces"].push_back({{"rank", r}, {"offset", d["o"]}, {"numel", d["c"]}});
    }
  }
}

// Rank 0, for the filtered entries: every kept tensor must be whole (each rank decides on its own
// pieces: a filter that does not decide by name alone may keep a tensor on some ranks only), and
// an entry that kept nothing is left out, as from a full checkpoint.
void check_filtered_entries(json& entries, const SaveFilters& filters) {
  for (const auto& [key, fn] : filters) {
    if (!entries.contains(key)) continue;
    json& e = entries[key];
    if (!e.contains("tensors") || e["tensors"].empty()) {
      entries.erase(key);
      continue;
    }
    for (const auto& [name, t] : e["tensors"].items()) {
      int64_t stored = 0;
      for (const json& p : t["pieces"]) stored += p["numel"].get<int64_t>();
      const int64_t total = numel_of(t["shape"].get<Shape>());
      FABRIC_CHECK(stored == total, ValueError, "Fabric.save (sharded): the filter for '", key,
                   "' kept ", stored, " of the ", total, " elements of '", name,
                   "': each rank calls it with its own piece of a sharded tensor, so it must "
                   "decide alike on every rank (by the name)");
    }
  }
}

// Rank 0: the state_dict names of each module that no piece is stored under are tied to one that
// is (GPT's lm_head.weight is transformer.wte.weight): record them as aliases. Under a filter, a
// name with neither was filtered out.
void add_aliases(json& entries, const State& state, const SaveFilters& filters) {
  for (const auto& [key, entry] : state) {
    auto* m = std::get_if<nn::Module*>(&entry.value());
    if (!m || !entries.contains(key)) continue;
    const bool filtered = filters.count(key) > 0;
    json& e = entries[key];
    if (!e.contains("tensors")) e["tensors"] = json::object();
    std::map<const TensorImpl*, std::vector<std::string>> names =
        nn::parameter_names_by_tensor(**m);
    std::map<std::string, const TensorImpl*> impl_of;
    for (const auto& [impl, ns] : names)
      for (const auto& n : ns) impl_of[n] = impl;
    json aliases = json::object();
    for (const auto& [name, t] : (*m)->state_dict()) {
      if (e["tensors"].contains(name)) continue;
      std::string stored;
      if (auto it = impl_of.find(name); it != impl_of.end())
        for (const auto& other : names[it->second])
          if (e["tensors"].contains(other)) stored = other;
      if (stored.empty() && filtered) continue;
      FABRIC_CHECK(!stored.empty(), ValueError, "Fabric.save (sharded): '", key, "' state_dict key '", name,
                   "' was written by no rank and is tied to no written parameter");
      aliases[name] = stored;
    }
    if (!aliases.empty()) e["aliases"] = aliases;
  }
}

// ---- load ---------------------------------------------------------------------------------------

void load_module(ShardedReader& reader, const std::string& key, nn::Module& module, bool strict,
                 distributed::Strategy& strategy) {
  distributed::FullyShardedModule* fsdp = strategy.sharded_module(module);
  if (!fsdp) {
    strategy.load_module_state(module, reader.module_state(key), strict);
    return;
  }
  // Checked up front, as load_state_dict does: the pieces are then read straight into the shards.
  const nn::StateDict mine = module.state_dict();  // handles only: no sharded data is read
  std::vector<std::string> missing, unexpected, mis_shaped;
  for (const auto& [name, t] : mine) {
    const json* saved = reader.tensor(key, name);
    if (!saved) {
      missing.push_back(name);
    } else if (ShardedReader::shape_of(*saved) != t.sizes()) {
      mis_shaped.push_back(name + ": checkpoint " + shape_str(ShardedReader::shape_of(*saved)) + ", model " +
                           shape_str(t.sizes()));
    }
  }
  for (const auto& name : reader.names(key))
    if (!mine.contains(name)) unexpected.push_back(name);
  if (!mis_shaped.empty() || (strict && (!missing.empty() || !unexpected.empty()))) {
    std::string msg = "Fabric.load: sharded checkpoint " + reader.dir() + " entry '" + key + "' does not fit the " +
                      module.type_name() + ": ";
    auto list = [&](const char* what, const std::vector<std::string>& ns) {
      if (ns.empty()) return;
      msg += std::string(what) + ": ";
      for (size_t i = 0; i < ns.size(); ++i) msg += (i ? ", " : "") + ns[i];
      msg += ". ";
    };
    if (strict) list("missing keys", missing);
    if (strict) list("unexpected keys", unexpected);
    list("size mismatch", mis_shaped);
    throw ValueError(msg);
  }
  fsdp->load_state_pieces(
      [&](const std::string& name, int64_t offset, int64_t numel) { return reader.read(key, name, offset, numel); },
      strict);
}

void load_optimizer(ShardedReader& reader, const std::string& key, optim::Optimizer& optimizer,
                    distributed::Strategy& strategy) {
  const std::string saved = reader.optimizer_name(key);
  FABRIC_CHECK(saved.empty() || saved == optimizer.name(), ValueError, "Fabric.load: sharded checkpoint ", reader.dir(),
               " holds a ", saved, " optimizer under '", key, "' but the state passed to load holds a ",
               optimizer.name());
  distributed::FullyShardedModule* fsdp = strategy.sharded_module_for(optimizer);
  if (!fsdp) {
    strategy.load_optimizer_state(optimizer, reader.optimizer_state(key));
    return;
  }
  fsdp->load_optimizer_pieces(optimizer, reader.optimizer_pieces(key),
                              [&](const std::string& name, int64_t offset, int64_t numel) {
                                return reader.read(key, "state." + name, offset, numel);
                              });
}

// ---- save ---------------------------------------------------------------------------------------

// Steps 2-4 of save_sharded_checkpoint, once the temporary directory `tmp` exists.
void write_and_commit(const std::string& path, const State& state, distributed::Strategy& strategy,
                      json& entries,
                      const std::vector<std::pair<std::string, Tensor>>& plain_tensors,
                      const std::string& tmp, const SaveFilters& filters) {
  const int rank = strategy.global_rank(), world = strategy.world_size();
  const fs::path target = fs::absolute(path);
  auto fail_all = [&](const std::vector<std::string>& errors) {
    for (size_t r = 0; r < errors.size(); ++r) {
      if (errors[r].empty()) continue;
      if (rank == 0) {
        std::error_code ec;
        fs::remove_all(tmp, ec);
      }
      throw_encoded(errors[r], int(r) == rank ? "" : "rank " + std::to_string(r) + ": ");
    }
  };

  // 2. Every rank describes its pieces to all (rank 0 needs them for meta.json).
  Pieces pieces;
  std::string described;
  try {
    pieces = collect_pieces(state, strategy, entries, filters);
    described = json{{"pieces", pieces.described}}.dump();
    described.insert(described.begin(), '+');
  } catch (const std::exception& e) {
    described = encode_error(e);
  }
  std::vector<std::string> all = all_gather_strings(strategy, described);
  std::vector<std::string> errors;
  for (auto& d : all) errors.push_back(d[0] == '+' ? "" : d);
  fail_all(errors);

  // 3. Every rank writes its file at once; rank 0 also the plain tensors.
  std::string status;
  try {
    if (rank == 0) {
      for (auto& d : all) d = d.substr(1);
      merge_pieces(entries, all);
      check_filtered_entries(entries, filters);
      add_aliases(entries, state, filters);
      if (!plain_tensors.empty()) save_safetensors(tmp + "/tensors.safetensors", plain_tensors);
    }
    save_safetensors(tmp + "/" + sharded_detail::rank_file_name(rank, world), pieces.items,
                     {{"format", sharded_detail::kShardedFormat},
                      {"rank", std::to_string(rank)},
                      {"world_size", std::to_string(world)}});
  } catch (const std::exception& e) {
    status = encode_error(e);
  }
  pieces = Pieces();
  fail_all(all_gather_strings(strategy, status));

  // 4. Rank 0 writes meta.json and commits; the others learn how that went.
  std::string committed = "+";
  if (rank == 0) {
    try {
      const json meta = {{"format", sharded_detail::kShardedFormat},
                         {"version", sharded_detail::kShardedVersion},
                         {"world_size", world},
                         {"entries", entries}};
      finish_directory(tmp, "meta.json", meta, 1, target.string());
    } catch (const std::exception& e) {
      std::error_code ec;
      fs::remove_all(tmp, ec);
      committed = encode_error(e);
    }
  }
  committed = broadcast_string(strategy, committed);
  if (committed[0] != '+') throw_encoded(committed, rank == 0 ? "" : "rank 0: ");
}

State read_sharded_checkpoint(const std::string& path, State& state, precision::Precision* precision, bool strict,
                              distributed::Strategy& strategy, std::vector<std::string>* warnings) {
  ShardedReader reader(path);
  const json& entries = reader.entries();
  check_strict_keys(state, entries, strict, path);
  SafetensorsFile tensor_file;
  if (fs::exists(reader.dir() + "/tensors.safetensors"))
    tensor_file = load_safetensors(reader.dir() + "/tensors.safetensors");
  // Every requested entry's kind first: a mismatch must leave the model and optimizer as they were.
  for (const auto& [key, e] : entries.items())
    if (auto it = state.find(key); it != state.end())
      check_kind(it->second, key, entry_kind(e, key, reader.dir()));
  State remainder;
  for (const auto& [key, e] : entries.items()) {
    const std::string kind = entry_kind(e, key, reader.dir());
    auto it = state.find(key);
    if (it == state.end() && kind == "precision" && precision) {
      restore_precision_state(*precision, e, path, warnings);  // the plugin's state, restored by default
      continue;
    }
    if (it == state.end()) {
      // As from a full checkpoint: modules and optimizers as their tensors under "<key>.<name>".
      if (kind == "module") {
        for (const auto& name : reader.names(key)) remainder.emplace(key + "." + name, reader.read_whole(key, name));
      } else if (kind == "optimizer") {
        for (const auto& [name, t] : reader.optimizer_state(key).flatten()) remainder.emplace(key + "." + name, t);
      } else {
        add_plain_remainder(remainder, key, e, tensor_file, reader.dir());
      }
      continue;
    }
    StateEntry& target = it->second;
    if (auto* m = std::get_if<nn::Module*>(&target.value())) {
      load_module(reader, key, **m, strict, strategy);
    } else if (auto* o = std::get_if<optim::Optimizer*>(&target.value())) {
      load_optimizer(reader, key, **o, strategy);
    } else {
      restore_plain(target, key, e, tensor_file, reader.dir(), warnings);
    }
  }
  return remainder;
}

}  // namespace

bool holds_sharded_module(const State& state, const distributed::Strategy& strategy) {
  for (const auto& [key, entry] : state)
    if (auto* m = std::get_if<nn::Module*>(&entry.value()))
      if (strategy.sharded_module(**m)) return true;
  return false;
}

bool is_sharded_checkpoint(const std::string& path_in) {
  const std::string path = without_trailing_separators(path_in);
  std::error_code ec;  // an unreadable path is no sharded checkpoint: the full loader reports it
  if (fs::exists(path + "/meta.json", ec)) return true;
  // An interrupted commit (no atomic exchange) leaves only the previous checkpoint, at path.old
  // (named as commit_directory names it).
  return !fs::exists(path + "/state.json", ec) &&
         fs::exists(sibling_named(path, ".old") + "/meta.json", ec);
}

void save_sharded_checkpoint(const std::string& path_in, const State& state,
                             const precision::Precision* precision, distributed::Strategy& strategy,
                             const SaveFilters& filters) {
  FABRIC_CHECK(!path_in.empty(), ValueError, "Fabric.save: the path is empty");
  check_save_filters(state, filters);  // on every rank, before any collective
  // "ckpt/" is the directory ckpt: its temporary sibling must not land inside it. (File system
  // errors below are caught per step and reach every rank as IOErrors.)
  const std::string path = without_trailing_separators(path_in);
  const int rank = strategy.global_rank();
  const fs::path target = fs::absolute(path);
  json entries;
  std::vector<std::pair<std::string, Tensor>> plain_tensors;

  // 1. Rank 0 checks the keys, describes the state and creates the temporary directory.
  std::string tmp;
  if (rank == 0) {
    try {
      entries = describe_entries(state, precision, plain_tensors);
      std::error_code ec;
      fs::create_directories(target.parent_path(), ec);
      if (ec) io_fail(path, "cannot create the parent directory: " + ec.message());
      tmp = temporary_sibling(target.string(), ".tmp-");
      fs::remove_all(tmp, ec);
      fs::create_directory(tmp, ec);
      if (ec) io_fail(path, "cannot create the temporary directory " + tmp + ": " + ec.message());
      tmp.insert(tmp.begin(), '+');
    } catch (const std::exception& e) {
      tmp = encode_error(e);
    }
  }
  tmp = broadcast_string(strategy, tmp);
  if (tmp[0] != '+') throw_encoded(tmp, rank == 0 ? "" : "rank 0: ");
  tmp = tmp.substr(1);

  try {
    write_and_commit(path, state, strategy, entries, plain_tensors, tmp, filters);
  } catch (...) {
    if (rank == 0) {  // a collective failed (a peer died): leave no temporary directory behind
      std::error_code ec;
      fs::remove_all(tmp, ec);
    }
    throw;
  }
}

State load_sharded_checkpoint(const std::string& path_in, State& state, precision::Precision* precision, bool strict,
                              distributed::Strategy& strategy, std::vector<std::string>* warnings) {
  const std::string path = without_trailing_separators(path_in);
  try {
    return read_sharded_checkpoint(path, state, precision, strict, strategy, warnings);
  } catch (const fs::filesystem_error& e) {
    io_fail(path, e.what());
  } catch (const json::exception& e) {
    // What the targeted checks missed: still a malformed file, never a JSON library error.
    io_fail(path, std::string("meta.json is malformed: ") + e.what());
  }
}

}  // namespace fabric
