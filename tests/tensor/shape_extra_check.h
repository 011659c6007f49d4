// Replays the torch rows of tests/tensor/shape_extra_torch_rows.h (tools/fixtures/
// make_shape_extra_rows.py) through fabric: each test file maps the op names of its group to its
// fabric calls, and these checks compare what comes back with what torch gave.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fabric::shape_extra_check {

// One row's arguments: the tensor inputs in the layout the row names, and the rest.
struct Call {
  std::vector<Tensor> in;
  const std::vector<int64_t>& ints;
  const std::vector<double>& reals;
  std::string text;
};
using CallFn = std::function<std::vector<Tensor>(const Call&)>;
using CallTable = std::map<std::string, CallFn>;

// Every row of `group`: dtype, shape and values (torch's bits, or within the row's tolerance),
// strides and storage offset of views and whether they share input 0's storage, requires_grad,
// and the gradients of sum_k <w_k, out_k> for the floating inputs. Fails for a row whose op the
// table lacks and for a table entry that no row (or error row) of the group uses.
void check_rows(const std::string& group, const CallTable& table);
// Every error row of `group` throws a fabric::Error (an IndexError where torch raised one) whose
// message names the function and holds the row's phrase of torch's message.
void check_error_rows(const std::string& group, const CallTable& table);

}  // namespace fabric::shape_extra_check
