// nanoGPT's sampling step (model.py's generate), as torch computes it.
#pragma once
#include <cstdint>
#include <optional>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric::nn {

// logits: (B, V) float32 scores of the next token. Divides them by temperature, sets those below
// the top_k-th largest of their row to -inf (ties with it survive), takes the softmax and draws
// one id per row with multinomial(probs, 1): nanoGPT's
//   logits = logits / temperature; v, _ = torch.topk(logits, min(top_k, V));
//   logits[logits < v[:, [-1]]] = -inf; idx_next = torch.multinomial(F.softmax(logits, -1), 1)
// so with a torch_cpu generator the ids are torch's for the same logits and seed. Returns (B, 1)
// int64. temperature > 0; top_k > 0 when given.
Tensor sample_next_token(const Tensor& logits, double temperature, std::optional<int64_t> top_k,
                         Generator* gen = nullptr);

}  // namespace fabric::nn
