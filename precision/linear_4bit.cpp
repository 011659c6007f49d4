// Linear4bit: quantize-once construction, dequantize-per-forward, and the bitsandbytes quant-state
// JSON blob of its checkpoint (spec §6).
#include "precision/linear_4bit.h"

#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "autograd/grad_mode.h"
#include "precision/true_precision.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {

namespace {

std::string json_key(const std::string& quant_type) { return "weight_quant_state_bitsandbytes__" + quant_type; }

void check_options(const Linear4bitOptions& o) {
  FABRIC_CHECK(o.in_features > 0 && o.out_features > 0, ValueError,
               "Linear4bit: in_features and out_features must be positive, got ", o.in_features,
               " and ", o.out_features);
  parse_quant4_type(o.quant_type, "Linear4bit");
  check_blocksize_4bit(o.blocksize, "Linear4bit");
  FABRIC_CHECK(o.compute_dtype == DType::float32 || o.compute_dtype == DType::float16 ||
                   o.compute_dtype == DType::bfloat16,
               DTypeError, "Linear4bit: compute_dtype must be float32, float16 or bfloat16, got ",
               dtype_name(o.compute_dtype));
}

// The 8-bit dynamic code double quantization uses, as the float32 (256) tensor bitsandbytes saves.
Tensor nested_code_tensor() {
  return from_vector(std::vector<float>(dynamic_code_8bit().begin(), dynamic_code_8bit().end()), {256});
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// An error's message without a leading "Linear4bit: " (it is prefixed again with the key).
std::string without_layer_name(const char* what) {
  const std::string_view w(what), head("Linear4bit: ");
  return std::string(w.substr(0, head.size()) == head ? w.substr(head.size()) : w);
}

}  // namespace

Tensor quant_state_json_tensor(const QuantState4bit& s) {
  nlohmann::json j;
  j["quant_type"] = s.quant_type;
  j["blocksize"] = s.blocksize;
  j["dtype"] = std::string(dtype_name(s.dtype));
  j["shape"] = s.shape;
  if (s.nested) {
    j["nested_blocksize"] = s.nested_blocksize;
    j["nested_dtype"] = "float32";
    j["nested_offset"] = s.nested_offset;
  }
  std::string text = j.dump();
  // Padded with spaces (valid JSON whitespace) to a fixed length, so that loading one of our
  // checkpoints copies in place (a blob of another length replaces the buffer).
  if (text.size() < kQuantStateJsonBytes) text.resize(kQuantStateJsonBytes, ' ');
  std::vector<uint8_t> bytes(text.begin(), text.end());
  return from_vector(bytes, {static_cast<int64_t>(bytes.size())});
}

QuantState4bit parse_quant_state_json(const Tensor& blob) {
  FABRIC_CHECK(blob.defined() && blob.dtype() == DType::uint8 && blob.dim() == 1, ValueError,
               "Linear4bit: the quant_state entry must be a 1-D uint8 tensor of UTF-8 JSON");
  const auto bytes = blob.to_vector<uint8_t>();
  QuantState4bit s;
  try {
    const auto j = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
    s.quant_type = j.at("quant_type").get<std::string>();
    s.blocksize = j.at("blocksize").get<int64_t>();
    s.dtype = dtype_from_name(j.at("dtype").get<std::string>());
    s.shape = j.at("shape").get<Shape>();
    s.nested = j.contains("nested_offset");
    if (s.nested) {
      s.nested_offset = j.at("nested_offset").get<float>();
      s.nested_blocksize = j.value("nested_blocksize", int64_t{256});
    }
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(detail::cat("Linear4bit: malformed quant_state JSON: ", e.what()));
  }
  return s;
}

Linear4bit::Linear4bit(const Linear4bitOptions& options) : options_(options) {
  check_options(options_);
  nn::Linear init({.in_features = options_.in_features, .out_features = options_.out_features,
                   .bias = options_.bias});
  NoGradGuard no_grad;
  set_quantized(quantize_4bit(init.weight.detach().to(DType::float16), options_.blocksize,
                              options_.quant_type, options_.compress_statistics));
  if (options_.bias) bias = register_parameter("bias", init.bias.detach().clone());
}

std::shared_ptr<Linear4bit> Linear4bit::from_linear(const nn::Linear& linear,
                                                    const std::string& quant_type,
                                                    bool compress_statistics, DType compute_dtype,
                                                    int64_t blocksize) {
  const auto& lo = linear.options();
  Linear4bitOptions o{.in_features = lo.in_features, .out_features = lo.out_features,
                      .bias = lo.bias, .quant_type = quant_type,
                      .compress_statistics = compress_statistics, .blocksize = blocksize,
                      .compute_dtype = compute_dtype};
  check_options(o);
  // Built without running the random init (the private tag constructor), filled here.
  std::shared_ptr<Linear4bit> m(new Linear4bit(o, 0));
  NoGradGuard no_grad;
  m->set_quantized(quantize_4bit(linear.weight.detach().to(DType::float16).contiguous(),
                                 blocksize, quant_type, compress_statistics));
  if (lo.bias) {
    m->bias = m->register_parameter("bias", linear.bias.detach().to(DType::float32).clone(),
                                    linear.bias.requires_grad());
  }
  return m;
}

Linear4bit::Linear4bit(const Linear4bitOptions& options, int) : options_(options) {}

void Linear4bit::set_quantized(Quantized4bit q) {
  state_ = std::move(q.state);
  weight = register_parameter("weight", q.packed, /*requires_grad=*/false);
  // state_ holds the registered handles themselves: a load that replaces one (statistics of
  // another length) shows in quant_state_changed().
  state_.absmax = register_buffer("weight_absmax", state_.absmax);
  register_buffer("weight_quant_map", state_.quant_map());
  if (state_.nested) {
    state_.nested_absmax = register_buffer("weight_nested_absmax", state_.nested_absmax);
    // The state dequantizes with this buffer, so a checkpoint's nested_quant_map is the code used.
    state_.nested_code = register_buffer("weight_nested_quant_map", nested_code_tensor());
  }
  register_buffer(json_key(state_.quant_type), quant_state_json_tensor(state_));
  // The statistics stay float32 under Module::to(dtype): bitsandbytes keeps them in the quant
  // state, outside the module's buffers, and dequantization reads them as float32.
  for (const char* name :
       {"weight_absmax", "weight_quant_map", "weight_nested_absmax", "weight_nested_quant_map"})
    if (state_.nested || std::string_view(name).find("nested") == std::string_view::npos)
      keep_buffer_dtype(name);
  // bitsandbytes' Linear4bit checkpoint keys (spec §6), so state_dict() and Fabric::save write
  // its layout.
  set_state_key("weight_absmax", "weight.absmax");
  set_state_key("weight_quant_map", "weight.quant_map");
  if (state_.nested) {
    set_state_key("weight_nested_absmax", "weight.nested_absmax");
    set_state_key("weight_nested_quant_map", "weight.nested_quant_map");
  }
  set_state_key(json_key(state_.quant_type), "weight.quant_state.bitsandbytes__" + state_.quant_type);
  set_state_resizable(json_key(state_.quant_type));
  // A checkpoint quantized with another blocksize (bitsandbytes' default is 128 on ROCm) holds
  // statistics of another length: the layer takes them with the checkpoint's quant state, as
  // bitsandbytes' prequantized load does (sync_quant_state reads the blocksize from the blob;
  // dequantize_4bit refuses statistics whose length does not fit it).
  set_state_resizable("weight_absmax");
  if (state_.nested) set_state_resizable("weight_nested_absmax");
  synced_blob_ = own_tensor(json_key(state_.quant_type));
  synced_version_ = synced_blob_.storage()->version();
}

bool Linear4bit::quant_state_changed() const {
  const Tensor blob = own_tensor(json_key(options_.quant_type));
  if (blob.storage().get() != synced_blob_.storage().get() ||
      blob.storage()->version() != synced_version_) {
    return true;
  }
  if (!own_tensor("weight_absmax").is_same(state_.absmax)) return true;
  return state_.nested && !own_tensor("weight_nested_absmax").is_same(state_.nested_absmax);
}

QuantState4bit Linear4bit::checked_quant_state(const std::string& prefix, const Tensor& blob,
                                               const Tensor& packed, const Tensor& absmax,
                                               const Tensor& nested_absmax,
                                               const Tensor& nested_code) const {
  const std::string key = prefix + "weight.quant_state.bitsandbytes__" + options_.quant_type;
  QuantState4bit s;
  // The blob's own errors (malformed JSON: ValueError; an unknown dtype name: DTypeError), with the
  // key in front.
  try {
    s = parse_quant_state_json(blob);
  } catch (const DTypeError& e) {
    throw DTypeError(detail::cat("Linear4bit: ", key, ": ", without_layer_name(e.what())));
  } catch (const ValueError& e) {
    throw ValueError(detail::cat("Linear4bit: ", key, ": ", without_layer_name(e.what())));
  }
  // What dequantize_4bit and forward rely on, checked now so that a bad checkpoint fails at its
  // load (naming the entry) rather than at the next forward.
  FABRIC_CHECK(s.quant_type == options_.quant_type, ValueError, "Linear4bit: ", key, " holds ",
               s.quant_type, " weights but this layer is ", options_.quant_type);
  FABRIC_CHECK(s.shape == Shape({options_.out_features, options_.in_features}), ShapeError,
               "Linear4bit: ", key, ": the quant state's shape ", shape_str(s.shape),
               " differs from this layer's (", options_.out_features, ", ", options_.in_features,
               ")");
  FABRIC_CHECK(s.nested == options_.compress_statistics, ValueError, "Linear4bit: ", key,
               ": the checkpoint's double quantization (", s.nested ? "on" : "off",
               ") differs from this layer's (", options_.compress_statistics ? "on" : "off", ")");
  FABRIC_CHECK(s.blocksize >= 32 && s.blocksize <= 4096 && (s.blocksize & (s.blocksize - 1)) == 0,
               ValueError, "Linear4bit: ", key, ": blocksize ", s.blocksize,
               " (expected a power of two from 32 to 4096)");
  FABRIC_CHECK(s.dtype == DType::float32 || s.dtype == DType::float16 || s.dtype == DType::bfloat16,
               DTypeError, "Linear4bit: ", key, ": dtype ", dtype_name(s.dtype),
               " (expected float32, float16 or bfloat16, the dtype the weight dequantizes to)");
  const int64_t n = s.numel();
  FABRIC_CHECK(packed.defined() && packed.dtype() == DType::uint8 && packed.numel() == (n + 1) / 2,
               ShapeError, "Linear4bit: ", prefix, "weight is a ",
               packed.defined() ? dtype_name(packed.dtype()) : "missing", " tensor of ",
               packed.defined() ? packed.numel() : 0, " elements (expected ", (n + 1) / 2,
               " uint8 bytes: ", n, " packed 4-bit codes)");
  const int64_t nblocks = ceil_div(n, s.blocksize);
  FABRIC_CHECK(absmax.defined() && absmax.numel() == nblocks, ShapeError, "Linear4bit: ", prefix,
               "weight.absmax holds ", absmax.defined() ? absmax.numel() : 0,
               " values, but the quant state (", n, " weights in blocks of ", s.blocksize,
               ") needs ", nblocks);
  if (s.nested) {
    FABRIC_CHECK(s.nested_blocksize >= 1, ValueError, "Linear4bit: ", key, ": nested_blocksize ",
                 s.nested_blocksize, " (expected a positive blocksize, bitsandbytes' 256)");
    const int64_t nested_blocks = ceil_div(nblocks, s.nested_blocksize);
    FABRIC_CHECK(nested_absmax.defined() && nested_absmax.numel() == nested_blocks, ShapeError,
                 "Linear4bit: ", prefix, "weight.nested_absmax holds ",
                 nested_absmax.defined() ? nested_absmax.numel() : 0, " values, but ", nblocks,
                 " absmax codes in nested blocks of ", s.nested_blocksize, " need ", nested_blocks);
    FABRIC_CHECK(nested_code.defined() && nested_code.numel() == 256, ShapeError,
                 "Linear4bit: ", prefix, "weight.nested_quant_map holds ",
                 nested_code.defined() ? nested_code.numel() : 0,
                 " values (expected the 256 of the 8-bit code)");
    s.nested_absmax = nested_absmax;
    s.nested_code = nested_code;
  }
  s.absmax = absmax;
  return s;
}

void Linear4bit::read_quant_state(const std::string& prefix) const {
  const bool nested = options_.compress_statistics;
  const Tensor blob = own_tensor(json_key(options_.quant_type));
  QuantState4bit s =
      checked_quant_state(prefix, blob, own_tensor("weight"), own_tensor("weight_absmax"),
                          nested ? own_tensor("weight_nested_absmax") : Tensor(),
                          nested ? own_tensor("weight_nested_quant_map") : Tensor());
  // Only a state that passed every check replaces the current one.
  state_ = std::move(s);
  synced_blob_ = blob;
  synced_version_ = blob.storage()->version();
}

void Linear4bit::sync_quant_state(const std::string& prefix) {
  read_quant_state(prefix);
  weight = own_tensor("weight");
}

const QuantState4bit& Linear4bit::synced_state() const {
  // A load_state_dict (or Fabric::load) wrote new quant-state tensors since the last read: the
  // getters describe what was loaded, not the weights before it.
  if (quant_state_changed()) read_quant_state("");
  return state_;
}

void Linear4bit::prepare_loaded_state(const std::string& prefix, nn::StateDict& state) const {
  // Quantize on load, as the reference's bitsandbytes layers do: a floating (out, in) weight is
  // the unconverted Linear's, quantized here as from_linear quantizes it (cast to float16 first);
  // its packed codes and quant state then load in place of ours.
  const Tensor* w = state.find(prefix + "weight");
  if (w == nullptr || !w->defined() || !is_floating(w->dtype()) ||
      w->sizes() != Shape({options_.out_features, options_.in_features})) {
    check_loaded_quant_state(prefix, state);
    return;
  }
  NoGradGuard no_grad;
  Quantized4bit q = quantize_4bit(w->detach().to(DType::float16).contiguous(), options_.blocksize,
                                  options_.quant_type, options_.compress_statistics);
  state.insert(prefix + "weight", q.packed);
  state.insert(prefix + "weight.absmax", q.state.absmax);
  state.insert(prefix + "weight.quant_map", q.state.quant_map());
  if (q.state.nested) {
    state.insert(prefix + "weight.nested_absmax", q.state.nested_absmax);
    state.insert(prefix + "weight.nested_quant_map", nested_code_tensor());
  }
  state.insert(prefix + "weight.quant_state.bitsandbytes__" + options_.quant_type, quant_state_json_tensor(q.state));
}

void Linear4bit::check_loaded_quant_state(const std::string& prefix,
                                          const nn::StateDict& state) const {
  // A quantized checkpoint: its quant state is checked here, before load_state_dict copies
  // anything, so that a malformed one fails the load and leaves the layer as it was (a plain load
  // has no hook after the copy). An entry the state lacks is the layer's own, as after a
  // non-strict partial load; the packed weight and the code table have fixed shapes, which the
  // load itself checks.
  const std::string other = options_.quant_type == "nf4" ? "fp4" : "nf4";
  const Tensor* other_blob = state.find(prefix + "weight.quant_state.bitsandbytes__" + other);
  FABRIC_CHECK(other_blob == nullptr || !other_blob->defined(), ValueError, "Linear4bit: ", prefix,
               "weight.quant_state.bitsandbytes__", other, ": the checkpoint holds ", other,
               " weights but this layer is ", options_.quant_type);
  const bool nested = options_.compress_statistics;
  bool any = false;
  auto entry = [&](const std::string& key, const char* own) {
    const Tensor* t = state.find(prefix + key);
    if (t == nullptr || !t->defined()) return own_tensor(own);
    any = true;
    return *t;
  };
  Tensor blob = entry("weight.quant_state.bitsandbytes__" + options_.quant_type,
                      json_key(options_.quant_type).c_str());
  // The load converts a 1-D blob of another integer dtype to uint8; so does the check.
  if (blob.dim() == 1 && blob.dtype() != DType::uint8 && !is_floating(blob.dtype())) {
    blob = blob.to(DType::uint8);
  }
  const Tensor absmax = entry("weight.absmax", "weight_absmax");
  const Tensor nested_absmax =
      nested ? entry("weight.nested_absmax", "weight_nested_absmax") : Tensor();
  if (!any) return;  // nothing of the quant state loads
  (void)checked_quant_state(prefix, blob, own_tensor("weight"), absmax, nested_absmax,
                            nested ? own_tensor("weight_nested_quant_map") : Tensor());
}

Tensor Linear4bit::dequantized_weight() const {
  const QuantState4bit& state = synced_state();
  NoGradGuard no_grad;
  // Straight into the compute dtype, rounded through the state's dtype first as the reference's
  // dequantize-then-cast is (float16 -> bfloat16 rounds twice), in one pass.
  return dequantize_4bit(weight, state, options_.compute_dtype);
}

Tensor Linear4bit::forward(const Tensor& x) {
  FABRIC_CHECK(x.dim() >= 1 && x.size(-1) == options_.in_features, ShapeError,
               "Linear4bit.forward: expected input (..., ", options_.in_features, "), got ",
               shape_str(x.sizes()));
  const DType in_dtype = x.dtype();
  // A load_state_dict brought a new quant_state blob (the nested offset lives only there): re-read
  // it before using the weights.
  if (quant_state_changed()) sync_quant_state();
  // The weight carries no autograd history: only the input (and the bias) get gradients.
  const Tensor w = dequantized_weight();
  const Tensor b = bias.defined() ? bias.to(options_.compute_dtype) : Tensor();
  Tensor out = linear(cast_floating(x, options_.compute_dtype), w, b);
  return cast_floating(out, in_dtype);
}

int64_t Linear4bit::quantized_weight_bytes() const {
  const QuantState4bit& state = synced_state();
  int64_t n = weight.nbytes() + state.absmax.nbytes() + 16 * 4;
  if (state.nested) n += state.nested_absmax.nbytes() + 256 * 4;
  return n;
}

std::string Linear4bit::extra_repr() const {
  std::ostringstream os;
  os << "in_features=" << options_.in_features << ", out_features=" << options_.out_features
     << ", bias=" << (options_.bias ? "True" : "False") << ", quant_type=" << options_.quant_type
     << ", compress_statistics=" << (options_.compress_statistics ? "True" : "False")
     << ", compute_dtype=" << dtype_name(options_.compute_dtype);
  return os.str();
}

}  // namespace fabric::precision
