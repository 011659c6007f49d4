// Reading sharded checkpoints piece by piece (ShardedReader), and fabric-train consolidate, which
// turns one into the full layout in a single process.
#include "runtime/sharded_checkpoint_reader.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "runtime/checkpoint_detail.h"
#include "runtime/sharded_checkpoint.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/write_target.h"

namespace fabric {
namespace sharded_detail {
namespace fs = std::filesystem;

std::string rank_file_name(int rank, int world_size) {
  return "rank-" + std::to_string(rank) + "-of-" + std::to_string(world_size) + ".safetensors";
}

std::string piece_key(const std::string& entry, const std::string& name, int64_t offset) {
  return entry + "/" + name + "/" + std::to_string(offset);
}

namespace {

json number_to_json(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}

double number_from_json(const json& j, const std::string& where) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  throw IOError(where + " is not a number (found " + j.dump() + ")");
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// "state.<index>.<key>" -> (index, key); false for other names.
bool parse_state_name(const std::string& name, int64_t& index, std::string& key) {
  if (!name.starts_with("state.")) return false;
  const size_t dot = name.find('.', 6);
  if (dot == std::string::npos || dot == 6 || dot + 1 == name.size()) return false;
  const auto [end, ec] = std::from_chars(name.data() + 6, name.data() + dot, index);
  if (ec != std::errc() || end != name.data() + dot) return false;
  key = name.substr(dot + 1);
  return true;
}

}  // namespace

json hyper_params_to_json(const optim::HyperParams& h) {
  json out = json::object();
  for (const auto& [k, v] : h) {
    if (const double* d = std::get_if<double>(&v)) {
      out[k] = number_to_json(*d);
    } else if (const bool* b = std::get_if<bool>(&v)) {
      out[k] = *b;
    } else {
      json a = json::array();
      for (double x : std::get<std::vector<double>>(v)) a.push_back(number_to_json(x));
      out[k] = a;
    }
  }
  return out;
}

optim::HyperParams hyper_params_from_json(const json& j, const std::string& where) {
  FABRIC_CHECK(j.is_object(), IOError, where, " is not an object of hyper-parameters");
  optim::HyperParams h;
  for (const auto& [k, v] : j.items()) {
    if (v.is_boolean()) {
      h[k] = v.get<bool>();
    } else if (v.is_array()) {
      std::vector<double> xs;
      for (const auto& x : v) xs.push_back(number_from_json(x, where + "." + k));
      h[k] = xs;
    } else {
      h[k] = number_from_json(v, where + "." + k);
    }
  }
  return h;
}

ShardedReader::ShardedReader(const std::string& path) : path_(path), dir_(path) {
  const std::string old = sibling_named(dir_, ".old");
  if (!fs::exists(dir_ + "/meta.json") && fs::exists(old + "/meta.json")) dir_ = old;
  std::ifstream in(dir_ + "/meta.json");
  if (!in) throw IOError("sharded checkpoint " + path + ": no meta.json there (not a sharded checkpoint, or missing)");
  try {
    meta_ = json::parse(in);
  } catch (const std::exception& e) {
    throw IOError("sharded checkpoint " + dir_ + "/meta.json: not valid JSON: " + e.what());
  }
  // Fields compared as JSON values: one of another type (or a top-level array) makes no
  // description, not a JSON type error.
  const bool is_object = meta_.is_object();
  const json format = is_object && meta_.contains("format") ? meta_["format"] : json();
  const bool ok = is_object && format == kShardedFormat && meta_.contains("entries") && meta_["entries"].is_object() &&
                  meta_.contains("world_size") && meta_["world_size"].is_number_integer() &&
                  meta_["world_size"].get<int64_t>() >= 1 &&
                  meta_["world_size"].get<int64_t>() <= std::numeric_limits<int>::max();
  // The format right and world_size wrong said "expected format X ..., found format X": name it.
  if (!ok && is_object && format == kShardedFormat && meta_.contains("entries") &&
      meta_["entries"].is_object())
    throw IOError(
        "sharded checkpoint " + dir_ + "/meta.json: world_size is " +
        (meta_.contains("world_size") ? meta_["world_size"].dump() : std::string("missing")) +
        "; expected the number of ranks that wrote it, an integer from 1 to " +
        std::to_string(std::numeric_limits<int>::max()));
  if (!ok)
    throw IOError("sharded checkpoint " + dir_ + "/meta.json: not a sharded checkpoint description (expected "
                  "format \"" + kShardedFormat + "\" with world_size and entries, found format " +
                  (format.is_null() ? std::string("none") : format.dump()) + ")");
  const json version = meta_.contains("version") ? meta_["version"] : json();
  FABRIC_CHECK(version == kShardedVersion, IOError, "sharded checkpoint ", dir_, "/meta.json: version ",
               version.dump(), " (this build reads version ", kShardedVersion, ")");
  world_size_ = meta_["world_size"].get<int>();
}

const json& ShardedReader::entry(const std::string& key) const {
  const json& es = entries();
  FABRIC_CHECK(es.contains(key), KeyError, "sharded checkpoint ", dir_, ": no entry '", key, "'");
  return es[key];
}

std::string ShardedReader::stored_name(const std::string& key, const std::string& name) const {
  const json& e = entry(key);
  if (e.contains("tensors") && e["tensors"].contains(name)) return name;
  if (e.contains("aliases"))
    if (auto a = e["aliases"].find(name); a != e["aliases"].end() && a->is_string()) return a->get<std::string>();
  return name;
}

const json* ShardedReader::tensor(const std::string& key, const std::string& name) const {
  const json& e = entry(key);
  if (!e.contains("tensors")) return nullptr;
  const json& ts = e["tensors"];
  const auto it = ts.find(stored_name(key, name));
  return it == ts.end() ? nullptr : &*it;
}

std::vector<std::string> ShardedReader::names(const std::string& key) const {
  const json& e = entry(key);
  std::vector<std::string> out;
  if (e.contains("tensors"))
    for (const auto& [n, t] : e["tensors"].items()) out.push_back(n);
  if (e.contains("aliases"))
    for (const auto& [n, t] : e["aliases"].items()) out.push_back(n);
  return out;
}

Shape ShardedReader::shape_of(const json& t) { return t.at("shape").get<Shape>(); }

const SafetensorsFile& ShardedReader::rank_file(int rank, const std::string& entry) {
  if (auto it = files_.find(rank); it != files_.end()) return it->second;
  FABRIC_CHECK(rank >= 0 && rank < world_size_, IOError, "sharded checkpoint ", dir_, "/meta.json: entry '", entry,
               "' lists a piece on rank ", rank, " but the checkpoint was written by ", world_size_, " ranks");
  const std::string file = dir_ + "/" + rank_file_name(rank, world_size_);
  FABRIC_CHECK(fs::exists(file), IOError, "sharded checkpoint ", dir_, ": the rank file ", rank_file_name(rank, world_size_),
               " is missing (meta.json lists pieces of '", entry, "' there; the checkpoint was written by ",
               world_size_, " ranks)");
  return files_.emplace(rank, load_safetensors(file)).first->second;
}

Tensor ShardedReader::piece(const std::string& entry, const std::string& name, const json& t, int rank,
                            int64_t offset, int64_t numel) {
  const SafetensorsFile& f = rank_file(rank, entry);
  const std::string key = piece_key(entry, name, offset);
  const std::string file = rank_file_name(rank, world_size_);
  auto it = f.tensors.find(key);
  FABRIC_CHECK(it != f.tensors.end(), IOError, "sharded checkpoint ", dir_, ": ", file, " lacks the piece '", key,
               "' that meta.json lists");
  const Tensor& p = it->second;
  const std::string dtype = t.at("dtype").get<std::string>();
  FABRIC_CHECK(p.dim() == 1 && p.numel() == numel && dtype_name(p.dtype()) == dtype, IOError, "sharded checkpoint ",
               dir_, ": ", file, " piece '", key, "' holds ", shape_str(p.sizes()), " ", dtype_name(p.dtype()),
               " but meta.json says (", numel, ",) ", dtype);
  return p;
}

// A damaged shape (negative, or more elements than int64 counts) is meta.json's fault, said with
// its place, before reshape reports it without naming any file.
int64_t ShardedReader::checked_numel(const std::string& entry, const std::string& name,
                                     const Shape& shape) const {
  int64_t n = 1;
  for (int64_t d : shape) {
    FABRIC_CHECK(d >= 0 && !__builtin_mul_overflow(n, d, &n), IOError, "sharded checkpoint ", dir_,
                 "/meta.json: '", entry, "' tensor '", name, "' has the shape ", shape_str(shape),
                 "; expected non-negative sizes whose product fits int64 (the file is damaged)");
  }
  return n;
}

Tensor ShardedReader::read(const std::string& entry, const std::string& name, int64_t offset, int64_t numel) {
  const json* t = tensor(entry, name);
  if (!t) return Tensor();
  const Shape shape = shape_of(*t);
  const int64_t total = checked_numel(entry, name, shape);
  const DType dtype = dtype_from_name(t->at("dtype").get<std::string>());
  FABRIC_CHECK(offset >= 0 && numel >= 0 && offset + numel <= total, ValueError, "sharded checkpoint ", dir_, ": '",
               entry, "' tensor '", name, "' has shape ", shape_str(shape), " (", total, " elements); elements [",
               offset, ", ", offset + numel, ") were asked for (does the model match the checkpoint?)");
  // Every piece lies inside the tensor: a shape edited smaller than its pieces (to no elements at
  // all, say) would otherwise read back as a smaller tensor and drop the weights silently.
  for (const json& p : t->at("pieces")) {
    const int64_t po = p.at("offset").get<int64_t>(), pn = p.at("numel").get<int64_t>();
    FABRIC_CHECK(po >= 0 && pn >= 0 && pn <= total && po <= total - pn, IOError,
                 "sharded checkpoint ", dir_, "/meta.json: '", entry, "' tensor '", name,
                 "' of shape ", shape_str(shape), " (", total,
                 " elements) lists a piece of elements [", po, ", ", po + pn,
                 ") (expected pieces inside the tensor; the file is damaged)");
  }
  if (numel == 0) return empty({0}, {.dtype = dtype});
  const std::string stored = stored_name(entry, name);  // an alias's pieces are under the stored name
  // The overlap of piece [po, po + pn) with the elements asked for, empty when a >= e.
  const auto overlap = [&](const json& p) {
    const int64_t po = p.at("offset").get<int64_t>(), pn = p.at("numel").get<int64_t>();
    return std::pair{std::max(offset, po), std::min(offset + numel, po + pn)};
  };
  // The pieces must cover the elements exactly before anything is allocated: a damaged
  // meta.json's shape could otherwise ask for any amount of memory first.
  int64_t covered = 0;
  for (const json& p : t->at("pieces")) {
    const auto [a, e] = overlap(p);
    if (a < e) covered += e - a;
  }
  FABRIC_CHECK(covered == numel, ValueError, "sharded checkpoint ", dir_, ": the pieces of '", entry, "' tensor '",
               name, "' cover ", covered, " of elements [", offset, ", ", offset + numel,
               ") (expected exactly ", numel, "): a piece is missing from meta.json, or listed twice");
  Tensor out;
  for (const json& p : t->at("pieces")) {
    const auto [a, e] = overlap(p);
    if (a >= e) continue;
    const int64_t po = p.at("offset").get<int64_t>(), pn = p.at("numel").get<int64_t>();
    const Tensor src = piece(entry, stored, *t, p.at("rank").get<int>(), po, pn);
    if (a == offset && e == offset + numel) return src.narrow(0, a - po, e - a);  // zero-copy
    if (!out.defined()) out = empty({numel}, {.dtype = dtype});
    out.narrow(0, a - offset, e - a).copy_(src.narrow(0, a - po, e - a));
  }
  return out;
}

Tensor ShardedReader::read_whole(const std::string& entry, const std::string& name) {
  const json* t = tensor(entry, name);
  if (!t) return Tensor();
  const Shape shape = shape_of(*t);
  return read(entry, name, 0, numel_of(shape)).reshape(shape);
}

nn::StateDict ShardedReader::module_state(const std::string& entry) {
  nn::StateDict sd;
  for (const std::string& n : names(entry)) {
    Tensor t = read_whole(entry, n);
    // Only an alias names no stored tensor: one whose target is missing would reach the writer as
    // an undefined tensor ("save_safetensors: tensor 'x' is undefined", naming no file).
    FABRIC_CHECK(t.defined(), IOError, "sharded checkpoint ", dir_, "/meta.json: '", entry,
                 "' lists '", n, "' as an alias of '", stored_name(entry, n),
                 "', which is not one of its tensors (the file is damaged)");
    sd.insert(n, std::move(t));
  }
  return sd;
}

std::string ShardedReader::optimizer_name(const std::string& key) const { return entry(key).value("optimizer", ""); }

optim::OptimizerState ShardedReader::optimizer_groups(const std::string& key) const {
  const json& e = entry(key);
  optim::OptimizerState s;
  FABRIC_CHECK(e.contains("param_groups") && e["param_groups"].is_array(), IOError, "sharded checkpoint ", dir_,
               "/meta.json: optimizer entry '", key, "' has no param_groups");
  for (size_t g = 0; g < e["param_groups"].size(); ++g) {
    const json& gj = e["param_groups"][g];
    const std::string where = "sharded checkpoint " + dir_ + "/meta.json: " + key + ".param_groups." + std::to_string(g);
    FABRIC_CHECK(gj.contains("params") && gj["params"].is_array(), IOError, where, " has no params");
    s.param_groups.push_back(
        {hyper_params_from_json(gj.value("options", json::object()), where), gj["params"].get<std::vector<int64_t>>()});
  }
  return s;
}

optim::OptimizerState ShardedReader::optimizer_state(const std::string& key) {
  optim::OptimizerState s = optimizer_groups(key);
  for (const std::string& n : names(key)) {
    int64_t index = 0;
    std::string k;
    FABRIC_CHECK(parse_state_name(n, index, k), IOError, "sharded checkpoint ", dir_, "/meta.json: optimizer entry '",
                 key, "' holds '", n, "' (expected state.<index>.<name>)");
    s.state[index][k] = read_whole(key, n);
  }
  return s;
}

distributed::FullyShardedModule::OptimizerPieces ShardedReader::optimizer_pieces(const std::string& key) {
  distributed::FullyShardedModule::OptimizerPieces out;
  out.scalars = optimizer_groups(key);
  for (const std::string& n : names(key)) {
    int64_t index = 0;
    std::string k;
    FABRIC_CHECK(parse_state_name(n, index, k), IOError, "sharded checkpoint ", dir_, "/meta.json: optimizer entry '",
                 key, "' holds '", n, "' (expected state.<index>.<name>)");
    if (tensor(key, n)->value("element", false)) {
      out.element_keys[index].push_back(k);
    } else {
      out.scalars.state[index][k] = read_whole(key, n);
    }
  }
  return out;
}

}  // namespace sharded_detail

// ---- fabric-train consolidate -----------------------------------------------------------------

namespace {

// `write` (a consolidation of `sharded_dir`), with what targeted checks of meta.json missed an
// IOError naming the checkpoint, never a JSON library error.
template <class Fn>
void reading_meta(const std::string& sharded_dir, Fn&& write) {
  try {
    write();
  } catch (const nlohmann::json::exception& e) {
    throw IOError("sharded checkpoint " + sharded_dir + ": meta.json is malformed: " + e.what());
  }
}

void write_consolidated_checkpoint(const std::string& sharded_dir, const std::string& out_dir) {
  using namespace checkpoint_detail;
  using sharded_detail::json;
  namespace fs = std::filesystem;
  FABRIC_CHECK(!out_dir.empty(), ValueError, "consolidate: the output path is empty");
  sharded_detail::ShardedReader reader(sharded_dir);
  fs::path target = fs::absolute(out_dir).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "dir/"
  std::error_code same_ec;
  FABRIC_CHECK(!fs::exists(target) || !fs::equivalent(target, reader.dir(), same_ec), ValueError,
               "consolidate: the output ", out_dir, " is the sharded checkpoint itself; write the full checkpoint "
               "elsewhere");
  // The commit replaces what is at `target`: only ever a previous checkpoint (or an empty folder),
  // never a file or a folder of something else.
  FABRIC_CHECK(!fs::exists(target) || fs::is_directory(target), ValueError, "consolidate: ", out_dir,
               " exists and is not a directory; the full checkpoint is a directory (name the output *.safetensors "
               "for the model weights alone in one file)");
  // A sharded checkpoint is never an earlier output (those are full): likely a run's own, which the
  // commit would replace.
  FABRIC_CHECK(!fs::exists(target / "meta.json"), ValueError, "consolidate: ", out_dir,
               " is a sharded checkpoint (it holds meta.json), which the full one would replace; "
               "choose a new path or an earlier output");
  FABRIC_CHECK(
      !fs::is_directory(target) || fs::is_empty(target) || fs::exists(target / "state.json"),
      ValueError, "consolidate: ", out_dir,
      " is a directory that holds no checkpoint (no state.json); choose a new path or an earlier "
      "output");
  // Its folder is made as export makes its output's.
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  // state.json's entries: what a single-process save writes (kinds, plain values, precision).
  json entries = json::object();
  for (const auto& [key, e] : reader.entries().items()) {
    (void)entry_kind(e, key, reader.dir());
    json out = json::object();
    for (const char* field : {"kind", "name", "state", "value"})
      if (e.contains(field)) out[field] = e[field];
    entries[key] = out;
  }
  const json meta = {{"format", kFormat}, {"version", kVersion}, {"entries", entries}};

  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) io_fail(out_dir, "cannot create the parent directory: " + ec.message());
  const std::string tmp = temporary_sibling(target.string(), ".tmp-");
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) io_fail(out_dir, "cannot create the temporary directory " + tmp + ": " + ec.message());
  try {
    for (const auto& [key, e] : reader.entries().items()) {
      const std::string kind = entry_kind(e, key, reader.dir());
      if (kind == "module") {
        const nn::StateDict sd = reader.module_state(key);
        save_safetensors(tmp + "/" + key + ".safetensors", {sd.begin(), sd.end()});
      } else if (kind == "optimizer") {
        save_safetensors(tmp + "/" + key + ".safetensors", reader.optimizer_state(key).flatten(),
                         {{"optimizer", reader.optimizer_name(key)}});
      }
    }
    if (fs::exists(reader.dir() + "/tensors.safetensors")) {
      fs::copy_file(reader.dir() + "/tensors.safetensors", tmp + "/tensors.safetensors");
      fsync_path(tmp + "/tensors.safetensors", false);
    }
    finish_directory(tmp, "state.json", meta, 2, target.string());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

void write_consolidated_weights(const std::string& sharded_dir, const std::string& out_file) {
  namespace fs = std::filesystem;
  FABRIC_CHECK(!out_file.empty(), ValueError, "consolidate: the output path is empty");
  FABRIC_CHECK(!fs::is_directory(out_file), ValueError, "consolidate: ", out_file,
               " is a directory; the model weights go to one .safetensors file");
  checkpoint_detail::check_not_a_checkpoint_file(out_file, "consolidate");
  sharded_detail::ShardedReader reader(sharded_dir);
  // The module to write: fabric-train's "model", or the checkpoint's only module.
  std::vector<std::string> modules;
  for (const auto& [key, e] : reader.entries().items())
    if (checkpoint_detail::entry_kind(e, key, reader.dir()) == "module") modules.push_back(key);
  std::string key;
  if (std::find(modules.begin(), modules.end(), "model") != modules.end()) {
    key = "model";
  } else if (modules.size() == 1) {
    key = modules.front();
  } else {
    std::string names;
    for (const auto& m : modules) names += (names.empty() ? "'" : ", '") + m + "'";
    throw ValueError("consolidate: " + sharded_dir + " holds " +
                     (modules.empty() ? std::string("no module") : "the modules " + names + " but none named 'model'") +
                     "; write the full checkpoint directory instead (an OUT not ending in .safetensors)");
  }
  const nn::StateDict sd = reader.module_state(key);
  const fs::path parent = fs::absolute(out_file).parent_path();
  fs::create_directories(parent);  // as export makes its output's folder
  // save_safetensors writes a temporary file, fsyncs it and renames it over out_file.
  save_safetensors(out_file, {sd.begin(), sd.end()}, {{"format", "pt"}});
}

}  // namespace

void consolidate_checkpoint(const std::string& sharded_dir, const std::string& out_dir) {
  reading_meta(sharded_dir, [&] { write_consolidated_checkpoint(sharded_dir, out_dir); });
}

void consolidate_model_weights(const std::string& sharded_dir, const std::string& out_file) {
  reading_meta(sharded_dir, [&] { write_consolidated_weights(sharded_dir, out_file); });
}

}  // namespace fabric
