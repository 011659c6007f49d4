// Numbers as Python's repr() prints them, for the extra_repr of modules whose torch counterpart
// prints a float argument: a module holds a double where torch holds whatever Python value it
// was given, so it prints as torch prints a float.
#pragma once
#include <string>

namespace fabric::nn {

// Python's repr of a float: the shortest digits that read back to `v`, positional for decimal
// exponents -4 to 15 ("0.0001", "1000000.0", "2.0"), else scientific ("1e-05", "1.5e+16"); "inf",
// "-inf", "nan".
std::string py_float(double v);

}  // namespace fabric::nn
