// Reading a sharded checkpoint (layout in sharded_checkpoint.h): meta.json, and any range of any
// tensor assembled from the rank files that hold it, each rank file opened only when first needed.
// Internal to runtime/ (shared by the sharded load and fabric-train consolidate).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "distributed/fsdp.h"
#include "nn/module.h"
#include "optim/state_dict.h"
#include "tensor/safetensors.h"

namespace fabric::sharded_detail {

using nlohmann::json;

inline constexpr const char* kShardedFormat = "fabric-sharded";
inline constexpr int kShardedVersion = 1;

// "rank-<r>-of-<N>.safetensors"
std::string rank_file_name(int rank, int world_size);
// The key of a piece in its rank file: "<entry>/<tensor name>/<offset>".
std::string piece_key(const std::string& entry, const std::string& name, int64_t offset);

// An optimizer's hyper-parameters as JSON and back (numbers, flags, tuples; a non-finite number is
// written as the string "inf", "-inf" or "nan", which JSON cannot hold).
json hyper_params_to_json(const optim::HyperParams& h);
optim::HyperParams hyper_params_from_json(const json& j, const std::string& where);

class ShardedReader {
 public:
  // Reads `path`/meta.json, or `path`.old/meta.json when an interrupted commit left only the
  // previous checkpoint there. IOError naming the file when it is missing, not JSON or not a
  // sharded checkpoint description.
  explicit ShardedReader(const std::string& path);

  const std::string& dir() const { return dir_; }  // where meta.json was read
  const json& entries() const { return meta_.at("entries"); }
  int world_size() const { return world_size_; }

  // The description ({shape, dtype, pieces, element}) of tensor `name` of `entry`, aliases (tied
  // parameters stored once) resolved; null when the entry lacks it.
  const json* tensor(const std::string& entry, const std::string& name) const;
  // Every name the entry answers to: its stored tensors and their aliases.
  std::vector<std::string> names(const std::string& entry) const;
  static Shape shape_of(const json& tensor);

  // Elements [offset, offset + numel) of `name` flattened in row-major order, 1-D, in the stored
  // dtype; undefined when the entry lacks `name`. ValueError when the range is outside the tensor
  // or the pieces meta.json lists do not cover it exactly; IOError for a missing rank file, or a
  // piece missing from its file or differing from meta.json.
  Tensor read(const std::string& entry, const std::string& name, int64_t offset, int64_t numel);
  // The whole tensor in its shape (undefined when absent).
  Tensor read_whole(const std::string& entry, const std::string& name);

  // A module entry's state_dict in the single-process layout (tied names included).
  nn::StateDict module_state(const std::string& entry);
  // An optimizer entry in the single-process layout, and the optimizer's name ("AdamW").
  optim::OptimizerState optimizer_state(const std::string& entry);
  std::string optimizer_name(const std::string& entry) const;
  // What FullyShardedModule::load_optimizer_pieces takes: the groups and the whole (not per
  // element) state tensors, and which keys are per element (read in pieces through read()).
  distributed::FullyShardedModule::OptimizerPieces optimizer_pieces(const std::string& entry);

  // How many rank files have been opened so far.
  size_t files_opened() const { return files_.size(); }

 private:
  const json& entry(const std::string& key) const;
  // `name`, or the stored tensor it is an alias of.
  std::string stored_name(const std::string& key, const std::string& name) const;
  // The element count of `shape`; IOError naming meta.json when it is negative or overflows.
  int64_t checked_numel(const std::string& entry, const std::string& name,
                        const Shape& shape) const;
  const SafetensorsFile& rank_file(int rank, const std::string& entry);
  Tensor piece(const std::string& entry, const std::string& name, const json& tensor, int rank, int64_t offset,
               int64_t numel);
  optim::OptimizerState optimizer_groups(const std::string& entry) const;

  std::string path_, dir_;
  json meta_;
  int world_size_ = 0;
  std::map<int, SafetensorsFile> files_;
};

}  // namespace fabric::sharded_detail
