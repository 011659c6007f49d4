/* fabric's C API: fabric-train's runs, a finished checkpoint's model and tensors, for a program in
 * C (or any language with a C FFI) that links libfabric_runtime (CMake: fabric::runtime). C99 and
 * C++; no C++ type or exception crosses it. README "C API" has an example.
 *
 * Status: every call that can fail returns a fabric_status, the exit status fabric-train gives
 * for the same failure: FABRIC_OK 0, FABRIC_ERROR 1 (a run, a file or the model failed),
 * FABRIC_CONFIG_ERROR 2 (a bad config or argument: NULL, a freed or wrong handle, a dimension out
 * of range, a buffer of the wrong size; nothing was done). fabric_last_error() then holds the
 * message (what fabric-train prints after "fabric-train: error: " or "config error: ").
 *
 * Ownership: a handle (fabric_tensor, fabric_model) made by a call belongs to the caller until
 * passed to its _free function; out-pointers are written only on success. Handles are known by
 * address: a freed one is refused unless its address has been reused by a newer handle, which it
 * then is, as a pointer after free(). Inputs are copied: buffers, strings and tensors given to a
 * call may be freed as soon as it returns. Strings the API returns through char** are the
 * caller's, freed with fabric_string_free.
 *
 * Threads: the error message is per thread. Handles may be used from any thread, one call on a
 * handle at a time. Runs print their progress on stdout and warnings on stderr as fabric-train
 * does. */
#ifndef FABRIC_RUNTIME_C_API_H
#define FABRIC_RUNTIME_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fabric_status {
  FABRIC_OK = 0,
  FABRIC_ERROR = 1,
  FABRIC_CONFIG_ERROR = 2
} fabric_status;

/* Element types (torch's names). bool elements are one byte, 0 or 1. */
typedef enum fabric_dtype {
  FABRIC_FLOAT32 = 0,
  FABRIC_FLOAT64 = 1,
  FABRIC_BFLOAT16 = 2,
  FABRIC_FLOAT16 = 3,
  FABRIC_INT64 = 4,
  FABRIC_INT32 = 5,
  FABRIC_INT8 = 6,
  FABRIC_UINT8 = 7,
  FABRIC_BOOL = 8,
  FABRIC_FLOAT8_E4M3FN = 9,
  FABRIC_FLOAT8_E5M2 = 10
} fabric_dtype;

typedef struct fabric_tensor fabric_tensor; /* a CPU tensor, contiguous, row-major */
typedef struct fabric_model fabric_model;   /* a checkpoint's model, built as fit built it */

/* The library's version ("0.1.0"); static storage. */
const char* fabric_version(void);
/* The message of this thread's last failed call ("" after a successful one). Valid until the
 * next call of this API on the thread. */
const char* fabric_last_error(void);
/* Frees a string the API returned (NULL: nothing). */
void fabric_string_free(char* text);

/* ---- tensors ---------------------------------------------------------------------------- */
/* A tensor of `shape` (ndim sizes, each >= 0; ndim 0: a scalar) holding a copy of `data`
 * (numel * element size bytes, row-major; NULL allowed when numel is 0). */
fabric_status fabric_tensor_create(const void* data, const int64_t* shape, size_t ndim,
                                   fabric_dtype dtype, fabric_tensor** out);
fabric_status fabric_tensor_ndim(const fabric_tensor* tensor, size_t* ndim);
/* Copies the ndim sizes into shape[0..ndim); `capacity` is shape's length (>= ndim). */
fabric_status fabric_tensor_shape(const fabric_tensor* tensor, int64_t* shape, size_t capacity);
/* The size of dimension `dim`, in [-ndim, ndim) (negative counts from the end, as torch). */
fabric_status fabric_tensor_size(const fabric_tensor* tensor, int64_t dim, int64_t* size);
fabric_status fabric_tensor_dtype(const fabric_tensor* tensor, fabric_dtype* dtype);
fabric_status fabric_tensor_numel(const fabric_tensor* tensor, int64_t* numel);
fabric_status fabric_tensor_nbytes(const fabric_tensor* tensor, size_t* nbytes);
/* Copies the elements (row-major) into `buffer`, which holds buffer_bytes >= nbytes bytes. */
fabric_status fabric_tensor_copy_to(const fabric_tensor* tensor, void* buffer, size_t buffer_bytes);
/* NULL: nothing. A handle that is no live tensor is FABRIC_CONFIG_ERROR: a freed one is refused
 * unless its address has been reused by a newer handle, as with free(), which the call then
 * frees. */
fabric_status fabric_tensor_free(fabric_tensor* tensor);

/* ---- runs (fabric-train fit / validate / resume) ------------------------------------------ */
/* What a run ended with (optional out-parameter of fit and resume). The losses describe this call
 * only: NaN when it ran no training step (last_loss) or no validation (last_val_loss), as with
 * trainer.max_steps 0 or a resume of a run that had already finished (whose step is the total). */
typedef struct fabric_run_result {
  int64_t step;         /* optimizer steps done in total */
  double last_loss;     /* this call's last training loss; NaN when it ran no step */
  double last_val_loss; /* this call's last validation loss; NaN when it ran no validation */
} fabric_run_result;

/* `sets`: n_sets "key=value" overrides, as fabric-train's --set (NULL when n_sets is 0).
 * Relative paths in the config are looked up in the current directory, the config's, then
 * fabric's home, as fabric-train's ($FABRIC_HOME, else the source tree the library was built
 * from, else <prefix>/share/fabric beside the installed library). Lightning's LT_* variables fold
 * into the config as fabric-train's (fit sets them to the config's values; validate resolves
 * without them, as `fabric-train validate` does, and sets them back as they were when it returns,
 * so that a later fit folds in what validate reported).
 * Processes: a config of fabric.devices x fabric.num_nodes > 1 runs in processes an external
 * launcher started (torchrun, mpirun, srun: each one the app, calling fabric_fit with the same
 * config), as `fabric-train fit` runs under that launcher; each returns when the run ends.
 * Without such a launcher it is refused (FABRIC_CONFIG_ERROR, before anything is written), because
 * fabric's own launcher starts the other ranks by running this process's command line again,
 * which in an embedding app is the app, not fabric-train: run it with `fabric-train fit`, or start
 * the app with the launcher. `result` may be NULL. */
fabric_status fabric_fit(const char* config_path, const char* const* sets, size_t n_sets,
                         fabric_run_result* result);
/* `fabric-train validate`: fit's checks, nothing written. `resolved_yaml` (may be NULL) receives
 * the resolved config (fabric_string_free it). */
fabric_status fabric_validate(const char* config_path, const char* const* sets, size_t n_sets,
                              char** resolved_yaml);
/* `fabric-train resume RUN_DIR`: continues the run from its last checkpoint; the sets as
 * resume's --set (trainer.max_steps=N lengthens it). Its processes as fabric_fit's. The config's
 * warnings are printed once, as by `fabric-train resume`. */
fabric_status fabric_resume(const char* run_dir, const char* const* sets, size_t n_sets,
                            fabric_run_result* result);

/* ---- a finished checkpoint's model --------------------------------------------------------- */
/* `checkpoint`: RUN_DIR/checkpoints/last (or step-N), RUN_DIR itself, or a checkpoint's
 * model.safetensors, as `fabric-train sample` takes; a sharded checkpoint is consolidated. The
 * model is built as fit built it (precision conversion, LoRA), on the CPU, in eval mode. */
fabric_status fabric_model_load(const char* checkpoint, fabric_model** out);
/* The model's forward on `input` (its batch as the model takes it: float features for an mlp,
 * int64 token ids (batch, time) for a gpt), as training ran it: input converted by the
 * checkpoint's precision plugin, inside its forward context, no gradients; output as the plugin
 * converts it back (float32 for mixed precisions). `*output` is the caller's. */
fabric_status fabric_model_forward(fabric_model* model, const fabric_tensor* input,
                                   fabric_tensor** output);
/* Receives generated text as it is drawn: `length` bytes (not NUL-terminated). */
typedef void (*fabric_text_callback)(const char* text, size_t length, void* user_data);
/* `fabric-train sample`: a GPT trained on text generates `tokens` characters after `prompt`
 * (temperature 0: greedy; top_k 0: all characters), the same bytes for the same seed. The prompt
 * (as the vocabulary reads it back) comes first. `callback` (may be NULL) gets the pieces as they
 * are drawn; `text` (may be NULL) receives the whole text, NUL-terminated (fabric_string_free
 * it). Another model is FABRIC_CONFIG_ERROR. */
fabric_status fabric_model_generate(fabric_model* model, const char* prompt, int64_t tokens,
                                    double temperature, int64_t top_k, uint64_t seed,
                                    fabric_text_callback callback, void* user_data, char** text);
/* NULL: nothing. A handle that is no live model is FABRIC_CONFIG_ERROR: a freed one is refused
 * unless its address has been reused by a newer handle, as with free(), which the call then
 * frees. */
fabric_status fabric_model_free(fabric_model* model);

/* `fabric-train export CHECKPOINT OUT_FILE [--dequantize [--dtype D]]`: the model's weights to a
 * safetensors file. dequantize 0: the state_dict as stored (dtype must be FABRIC_FLOAT32);
 * nonzero: the plain float state_dict, in `dtype` (FABRIC_FLOAT32, FABRIC_BFLOAT16 or
 * FABRIC_FLOAT16). */
fabric_status fabric_export(const char* checkpoint, const char* out_file, int dequantize,
                            fabric_dtype dtype);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FABRIC_RUNTIME_C_API_H */
