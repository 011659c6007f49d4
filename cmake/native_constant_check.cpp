// Configure-time check (cmake/FabricNativeFlags.cmake): does the compiler, with -O3 and its -march,
// keep a small vector constant that is held across calls in a loop? GCC 12.2 with AVX-512 does
// not: the basic-block vectorizer builds {1, 1, 0, 0} as one 256-bit constant, and the back end
// materialises it as a broadcast of its first element, so `want` reads back 1, 1, 1, 1.
// Exit status 0: the constant survived; 1: it was miscompiled.
#include <cstdio>
#include <initializer_list>
#include <vector>

__attribute__((noinline)) std::vector<double> filled(int k) { return std::vector<double>(4, k); }
__attribute__((noinline)) int count_wrong(const std::vector<double>& want) {
  int wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) wrong += want[i] != (i < 2 ? 1.0 : 0.0);
  return wrong;
}

int main() {
  int wrong = 0;
  for (int k : {1, 2}) {
    const std::vector<double> a = filled(k), b = filled(k + 1);
    const std::vector<double> want = {1.0, 1.0, 0.0, 0.0};
    wrong += count_wrong(want) + (a[0] != k) + (b[0] != k + 1);
  }
  std::printf("%s\n", wrong ? "miscompiled" : "ok");
  return wrong ? 1 : 0;
}
