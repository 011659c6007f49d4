// torch.einsum as torch 1.13 computes it without opt_einsum: each operand's repeated subscripts
// become diagonals, subscripts only one operand has (and the output lacks) are summed there, and
// the operands are contracted pairwise left to right, each pair one bmm over (batch, own,
// contracted) dims. "..." stands for broadcast dims; an implicit output is "..." followed by the
// subscripts seen once, in sorted order.
#include <algorithm>
#include <array>
#include <optional>
#include <string>

#include "tensor/autocast.h"
#include "tensor/ops.h"
#include "tensor/products_internal.h"
#include "tensor/promotion.h"
#include "tensor/shape.h"

namespace fabric {
namespace {

constexpr int kLetters = 52;  // A-Z then a-z (torch's order for an implicit output)
constexpr int kEllipsis = -1;

int letter_id(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' : c - 'a' + 26; }
char letter_of(int id) { return static_cast<char>(id < 26 ? 'A' + id : 'a' + id - 26); }

struct Term {
  std::vector<int> labels;  // letter ids, kEllipsis where "..." stands
  bool has_ellipsis = false;
};

struct Equation {
  std::vector<Term> inputs;
  Term output;
  bool explicit_output = false;
};

[[noreturn]] void fail(std::string_view eq, const std::string& what) {
  throw ValueError(detail::cat("einsum(\"", eq, "\"): ", what));
}

Term parse_term(std::string_view eq, std::string_view s, size_t base) {
  Term t;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ' ') continue;
    if (c == '.') {
      if (t.has_ellipsis || s.substr(i, 3) != "...")
        fail(eq,
             detail::cat("invalid '.' at index ", base + i, " (each term may hold one \"...\")"));
      t.has_ellipsis = true;
      t.labels.push_back(kEllipsis);
      i += 2;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t.labels.push_back(letter_id(c));
    } else {
      fail(eq, detail::cat("invalid subscript '", c, "' at index ", base + i,
                           "; subscripts must be in [a-zA-Z]"));
    }
  }
  return t;
}

Equation parse(std::string_view eq, size_t num_operands) {
  Equation e;
  const size_t arrow = eq.find("->");
  const std::string_view lhs = eq.substr(0, arrow);
  size_t start = 0;
  for (;;) {
    const size_t comma = lhs.find(',', start);
    e.inputs.push_back(parse_term(eq, lhs.substr(start, comma - start), start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (e.inputs.size() != num_operands)
    fail(eq, detail::cat("the equation has ", e.inputs.size(), " operand term(s) but ",
                         num_operands, " operand(s) were given"));
  std::array<int, kLetters> count{};
  bool any_ellipsis = false;
  for (const Term& t : e.inputs) {
    any_ellipsis = any_ellipsis || t.has_ellipsis;
    for (int l : t.labels)
      if (l != kEllipsis) ++count[l];
  }
  if (arrow != std::string_view::npos) {
    e.explicit_output = true;
    e.output = parse_term(eq, eq.substr(arrow + 2), arrow + 2);
    std::array<bool, kLetters> seen{};
    for (int l : e.output.labels) {
      if (l == kEllipsis) continue;
      if (seen[l])
        fail(eq, detail::cat("output subscript ", letter_of(l), " appears more than once"));
      if (count[l] == 0)
        fail(eq,
             detail::cat("output subscript ", letter_of(l), " does not appear in any input term"));
      seen[l] = true;
    }
  } else {
    if (any_ellipsis) e.output.labels.push_back(kEllipsis), e.output.has_ellipsis = true;
    for (int l = 0; l < kLetters; ++l)
      if (count[l] == 1) e.output.labels.push_back(l);
  }
  return e;
}

// The operands' shapes as the caller gave them: "(2, 3) and (3, 2)".
std::string operand_shapes(const std::vector<Tensor>& ops) {
  std::string s;
  for (size_t i = 0; i < ops.size(); ++i)
    s += (i == 0 ? "" : i + 1 == ops.size() ? " and " : ", ") + shape_str(ops[i].sizes());
  return s;
}

// a (..., L dims) and b aligned to the same label order (size 1 where a label is absent);
// `summed` marks the labels this pair contracts. Returns a . b with those dims kept as size 1.
// eq and the caller's operands name the op in an error.
// `pair_dtype`, where set, is the dtype a contracting pair's floating operands (float64 aside) are
// cast to: torch's CPU autocast has no class for einsum but one for the bmm it contracts with.
Tensor contract_pair(std::string_view eq, const std::vector<Tensor>& operands, Tensor a, Tensor b,
                     const std::vector<bool>& summed, std::optional<DType> pair_dtype) {
  const int64_t L = a.dim();
  std::vector<int64_t> only_a, only_b;  // summed labels one side lacks: summed on the other
  for (int64_t d = 0; d < L; ++d) {
    if (!summed[d]) continue;
    if (a.size(d) == 1 && b.size(d) != 1) only_b.push_back(d);
    if (b.size(d) == 1 && a.size(d) != 1) only_a.push_back(d);
  }
  if (!only_a.empty()) a = sum(a, only_a, true);
  if (!only_b.empty()) b = sum(b, only_b, true);
  std::vector<int64_t> batch, lo, ro, con;
  int64_t nb = 1, nlo = 1, nro = 1, nk = 1;
  Shape out_sizes;
  for (int64_t d = 0; d < L; ++d) {
    if (summed[d]) {
      con.push_back(d);
      nk *= a.size(d);
    } else if (a.size(d) == b.size(d)) {
      batch.push_back(d);
      nb *= a.size(d);
    } else if (b.size(d) == 1) {
      lo.push_back(d);
      nlo *= a.size(d);
    } else {
      ro.push_back(d);
      nro *= b.size(d);
    }
  }
  // One permutation serves both: a's ro dims and b's lo dims are size 1, so (batch, lo, con, ro)
  // reshapes to (B, LO, K) for a and to (B, K, RO) for b.
  std::vector<int64_t> perm = batch, order = batch;
  perm.insert(perm.end(), lo.begin(), lo.end());
  perm.insert(perm.end(), con.begin(), con.end());
  perm.insert(perm.end(), ro.begin(), ro.end());
  order.insert(order.end(), lo.begin(), lo.end());
  order.insert(order.end(), ro.begin(), ro.end());
  order.insert(order.end(), con.begin(), con.end());
  for (int64_t d : order) {
    const bool is_con = std::find(con.begin(), con.end(), d) != con.end();
    // Broadcast: a size-1 dim takes the other's size, 0 included (max would give 1 against 0).
    out_sizes.push_back(is_con ? 1 : a.size(d) == 1 ? b.size(d) : a.size(d));
  }
  // torch multiplies and sums with bmm only where a summed label has a size above 1 on both sides.
  bool contracts = false;
  for (int64_t d : con) contracts = contracts || (a.size(d) != 1 && b.size(d) != 1);
  if (pair_dtype && contracts) {
    for (Tensor* t : {&a, &b})
      if (is_floating(t->dtype()) && t->dtype() != DType::float64) *t = t->to(*pair_dtype);
  }
  // A pair without contraction is torch's mul, promoting an earlier pair's lower-precision result.
  if (a.dtype() != b.dtype()) {
    const DType common = promote_types(a.dtype(), b.dtype());
    a = a.to(common);
    b = b.to(common);
  }
  // bmm has no bool product: refused here, in einsum's name and the caller's shapes.
  FABRIC_CHECK(a.dtype() != DType::bool_ && b.dtype() != DType::bool_, DTypeError, "einsum(\"", eq,
               "\"): not implemented for bool operands (shapes ", operand_shapes(operands),
               "); supported: float64, float32, bfloat16, float16 and the integer types");
  const Tensor c =
      bmm(a.permute(perm).reshape({nb, nlo, nk}), b.permute(perm).reshape({nb, nk, nro}));
  std::vector<int64_t> inverse(L);
  for (int64_t i = 0; i < L; ++i) inverse[order[i]] = i;
  return c.reshape(out_sizes).permute(inverse);
}

}  // namespace

Tensor einsum(std::string_view eq, const std::vector<Tensor>& operands_in) {
  std::vector<Tensor> ops = operands_in;
  FABRIC_CHECK(!ops.empty(), ValueError, "einsum(\"", eq, "\"): at least one operand is needed");
  // Autocast sees every operand at once (CUDA casts them all to the lower dtype).
  for (Tensor& t : ops) {
    FABRIC_CHECK(t.defined(), ValueError, "einsum(\"", eq, "\"): undefined operand");
    apply_autocast(OpId::einsum, {&t});
  }
  for (const Tensor& t : ops) {
    FABRIC_CHECK(t.device() == ops[0].device(), DeviceError, "einsum(\"", eq,
                 "\"): operands on different devices (", ops[0].device(), " and ", t.device(), ")");
    FABRIC_CHECK(t.dtype() == ops[0].dtype(), DTypeError, "einsum(\"", eq,
                 "\"): operands must share one dtype, got ", dtype_name(ops[0].dtype()), " and ",
                 dtype_name(t.dtype()));
  }
  const Equation e = parse(eq, ops.size());
  const size_t n = ops.size();

  // Every operand's dims as label ids: letters 0..51, the k-th of the broadcast "..." dims
  // (right-aligned across operands) kLetters + k.
  int64_t ell = 0;
  std::vector<std::vector<int>> dims_of(n);
  for (size_t i = 0; i < n; ++i) {
    const Term& t = e.inputs[i];
    const int64_t letters = static_cast<int64_t>(t.labels.size()) - (t.has_ellipsis ? 1 : 0);
    FABRIC_CHECK(t.has_ellipsis ? ops[i].dim() >= letters : ops[i].dim() == letters, ShapeError,
                 "einsum(\"", eq, "\"): operand ", i, " has shape ", shape_str(ops[i].sizes()),
                 " but its term has ", letters, " subscript(s)",
                 t.has_ellipsis ? " besides \"...\"" : " and no \"...\"");
    if (t.has_ellipsis) ell = std::max(ell, ops[i].dim() - letters);
  }
  for (size_t i = 0; i < n; ++i) {
    const Term& t = e.inputs[i];
    const int64_t own = ops[i].dim() - (static_cast<int64_t>(t.labels.size()) - 1);
    for (int l : t.labels) {
      if (l != kEllipsis) {
        dims_of[i].push_back(l);
        continue;
      }
      for (int64_t k = ell - own; k < ell; ++k)
        dims_of[i].push_back(kLetters + static_cast<int>(k));
    }
  }

  // Global label order: the output's labels first (so the result needs no final permute), then
  // the contracted ones.
  std::vector<int> order;
  for (int l : e.output.labels) {
    if (l != kEllipsis) {
      order.push_back(l);
      continue;
    }
    for (int64_t k = 0; k < ell; ++k) order.push_back(kLetters + static_cast<int>(k));
  }
  const size_t n_out = order.size();
  std::vector<int> uses(kLetters + ell, 0), last_use(kLetters + ell, -1);
  for (size_t i = 0; i < n; ++i) {
    std::vector<int> seen;
    for (int l : dims_of[i])
      if (std::find(seen.begin(), seen.end(), l) == seen.end()) {
        seen.push_back(l);
        ++uses[l];
        last_use[l] = static_cast<int>(i);
      }
  }
  for (int l = 0; l < kLetters + ell; ++l)
    if (uses[l] > 0 && std::find(order.begin(), order.end(), l) == order.end()) order.push_back(l);
  std::vector<int> pos(kLetters + ell, -1);
  for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = static_cast<int>(i);
  const int64_t L = static_cast<int64_t>(order.size());

  // Where einsum has no autocast class (the CPU), its contracting pairs take bmm's, as torch's
  // composite einsum reaches the autocast bmm: a pair with a summed label is cast, others are not.
  const DeviceType dev = ops[0].device().type;
  std::optional<DType> pair_dtype;
  if (autocast_enabled(dev) && autocast_policy(OpId::einsum, dev) == AutocastPolicy::none &&
      autocast_policy(OpId::bmm, dev) == AutocastPolicy::lower)
    pair_dtype = autocast_state(dev).dtype;
  detail::AutocastOff off(ops[0].device());
  std::vector<Tensor> aligned(n);
  for (size_t i = 0; i < n; ++i) {
    Tensor t = ops[i];
    std::vector<int> labels = dims_of[i];
    // Repeated labels: the diagonal of their dims (which moves it last), until none is left.
    for (bool again = true; again;) {
      again = false;
      for (size_t x = 0; x < labels.size() && !again; ++x)
        for (size_t y = x + 1; y < labels.size() && !again; ++y) {
          if (labels[x] != labels[y]) continue;
          FABRIC_CHECK(t.size(x) == t.size(y), ShapeError, "einsum(\"", eq, "\"): subscript ",
                       letter_of(labels[x]), " is repeated for operand ", i,
                       " but the sizes don't match (", t.size(x), " != ", t.size(y), ")");
          t = diagonal(t, 0, static_cast<int64_t>(x), static_cast<int64_t>(y));
          const int l = labels[x];
          labels.erase(labels.begin() + y);
          labels.erase(labels.begin() + x);
          labels.push_back(l);
          again = true;
        }
    }
    // Labels nobody else has and the output lacks are summed right away.
    std::vector<int64_t> alone;
    for (size_t d = 0; d < labels.size(); ++d)
      if (uses[labels[d]] == 1 && pos[labels[d]] >= static_cast<int>(n_out))
        alone.push_back(static_cast<int64_t>(d));
    if (!alone.empty()) t = sum(t, alone, true);
    // Aligned to the global order, size 1 where a label is absent.
    std::vector<int64_t> perm(labels.size());
    for (size_t d = 0; d < perm.size(); ++d) perm[d] = static_cast<int64_t>(d);
    std::sort(perm.begin(), perm.end(),
              [&](int64_t p, int64_t q) { return pos[labels[p]] < pos[labels[q]]; });
    Shape full(L, 1);
    for (size_t d = 0; d < labels.size(); ++d) full[pos[labels[d]]] = t.size(d);
    aligned[i] = t.permute(perm).reshape(full);
  }
  // Sizes must agree, or be 1 (broadcast), label by label.
  Shape sizes(L, 1);
  for (size_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < L; ++d) {
      const int64_t s = aligned[i].size(d);
      FABRIC_CHECK(s == 1 || sizes[d] == 1 || s == sizes[d], ShapeError, "einsum(\"", eq,
                   "\"): operand ", i, " has size ", s, " for subscript ",
                   order[d] < kLetters ? std::string(1, letter_of(order[d])) : std::string("..."),
                   " where another operand has ", sizes[d]);
      if (s != 1) sizes[d] = s;
    }

  Tensor result = aligned[0];
  for (size_t i = 1; i < n; ++i) {
    std::vector<bool> summed(L, false);
    for (int64_t d = static_cast<int64_t>(n_out); d < L; ++d)
      summed[d] = last_use[order[d]] <= static_cast<int>(i);
    result = contract_pair(eq, operands_in, result, aligned[i], summed, pair_dtype);
  }
  // Every contracted label is size 1 by now: the output labels lead, in order.
  Shape out_shape(result.sizes().begin(), result.sizes().begin() + static_cast<int64_t>(n_out));
  return result.reshape(out_shape);
}

}  // namespace fabric
