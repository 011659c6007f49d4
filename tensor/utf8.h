// UTF-8 decoding shared by the safetensors reader, the text datasets and the config reader (which
// refuses a config that is not UTF-8 before a run writes anything).
#pragma once
#include <cstddef>
#include <string_view>

namespace fabric {

// Decodes the code point at s[i] into cp; returns its length in bytes, or 0 when the bytes there
// are not valid UTF-8 (bad lead or continuation byte, truncated, overlong, surrogate, > U+10FFFF).
size_t utf8_next(std::string_view s, size_t i, char32_t& cp);

// The offset of the first byte of `s` that is not valid UTF-8, or s.size() when all of it is.
size_t utf8_invalid_at(std::string_view s);

}  // namespace fabric
