// The state a precision plugin or loss scaler saves in a checkpoint: named plain values.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
namespace fabric::precision {
using StateValue = std::variant<int64_t, double, bool, std::string>;
using PrecisionState = std::map<std::string, StateValue>;
}
