/* The C API (runtime/c_api.h) from C: every entry point, with its error paths, against what
 * fabric-train does with the same config, checkpoint and seed. Compiled as C99 (warnings as
 * errors). Prints each failed check; exits 1 when any failed.
 * Build-time definitions: FABRIC_TRAIN_EXE, FABRIC_CONFIG_DIR, FABRIC_README,
 * FABRIC_C_API_EXAMPLE (the example's source) and FABRIC_C_API_EXAMPLE_EXE (built from it),
 * FABRIC_EXPECTED_VERSION. */
#define _POSIX_C_SOURCE 200809L
#include <fabric/runtime/c_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int failures = 0;
static char tmp[256];

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      ++failures;                                                                                  \
      printf("FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond, fabric_last_error()); \
    }                                                                                              \
  } while (0)

/* `call` returns `status` and the message holds each of the NULL-terminated `parts`. */
static void expect_error(fabric_status got, fabric_status status, const char* const* parts,
                         int line) {
  const char* message = fabric_last_error();
  int i;
  if (got != status) {
    ++failures;
    printf("FAIL line %d: status %d, expected %d (last error: %s)\n", line, (int)got, (int)status,
           message);
    return;
  }
  for (i = 0; parts[i] != NULL; ++i) {
    if (strstr(message, parts[i]) == NULL) {
      ++failures;
      printf("FAIL line %d: the message lacks '%s': %s\n", line, parts[i], message);
    }
  }
}
#define EXPECT_ERROR(call, status, ...)               \
  do {                                                \
    const char* parts_[] = {__VA_ARGS__, NULL};       \
    expect_error((call), (status), parts_, __LINE__); \
  } while (0)

static char* path_in_tmp(const char* name) {
  static char paths[16][512];
  static int next = 0;
  char* p = paths[next++ % 16];
  snprintf(p, 512, "%s/%s", tmp, name);
  return p;
}

static int exists(const char* path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* The whole file (NUL-terminated, malloc'ed; NULL when it cannot be read); *size its bytes. */
static char* slurp(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  char* data;
  long n;
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  data = (char*)malloc((size_t)n + 1);
  if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
    free(data);
    data = NULL;
  }
  fclose(f);
  if (data != NULL) data[n] = '\0';
  if (size != NULL) *size = (size_t)n;
  return data;
}

static int same_files(const char* a, const char* b) {
  size_t na = 0, nb = 0;
  char* da = slurp(a, &na);
  char* db = slurp(b, &nb);
  const int same = da != NULL && db != NULL && na == nb && memcmp(da, db, na) == 0;
  free(da);
  free(db);
  return same;
}

/* A command's stdout (malloc'ed) and exit status. */
static char* run_command(const char* command, int* status) {
  FILE* p = popen(command, "r");
  size_t used = 0, cap = 4096;
  char* out = (char*)malloc(cap);
  size_t n;
  if (p == NULL || out == NULL) {
    *status = -1;
    free(out);
    return NULL;
  }
  while ((n = fread(out + used, 1, cap - used - 1, p)) > 0) {
    used += n;
    if (cap - used < 2) out = (char*)realloc(out, cap *= 2);
  }
  out[used] = '\0';
  *status = pclose(p);
  return out;
}

static void test_version_and_errors(void) {
  CHECK(strcmp(fabric_version(), FABRIC_EXPECTED_VERSION) == 0);
  EXPECT_ERROR(fabric_tensor_ndim(NULL, NULL), FABRIC_CONFIG_ERROR, "fabric_tensor_ndim",
               "tensor is NULL");
  /* A successful call clears the message. */
  CHECK(fabric_tensor_free(NULL) == FABRIC_OK);
  CHECK(strcmp(fabric_last_error(), "") == 0);
  fabric_string_free(NULL);
}

static void test_tensors(void) {
  const float values[6] = {1, 2, 3, 4, 5, 6};
  const int64_t shape[2] = {2, 3};
  const int64_t bad_shape[2] = {2, -1};
  fabric_tensor* t = NULL;
  fabric_tensor* scalar = NULL;
  size_t ndim = 0, nbytes = 0;
  int64_t got_shape[4] = {0, 0, 0, 0}, numel = 0, size = 0;
  fabric_dtype dtype = FABRIC_INT8;
  float out[6] = {0};
  char small[8];
  int d;

  CHECK(fabric_tensor_create(values, shape, 2, FABRIC_FLOAT32, &t) == FABRIC_OK);
  CHECK(fabric_tensor_ndim(t, &ndim) == FABRIC_OK && ndim == 2);
  CHECK(fabric_tensor_shape(t, got_shape, 4) == FABRIC_OK && got_shape[0] == 2 &&
        got_shape[1] == 3);
  CHECK(fabric_tensor_size(t, -1, &size) == FABRIC_OK && size == 3);
  CHECK(fabric_tensor_size(t, 0, &size) == FABRIC_OK && size == 2);
  CHECK(fabric_tensor_dtype(t, &dtype) == FABRIC_OK && dtype == FABRIC_FLOAT32);
  CHECK(fabric_tensor_numel(t, &numel) == FABRIC_OK && numel == 6);
  CHECK(fabric_tensor_nbytes(t, &nbytes) == FABRIC_OK && nbytes == 24);
  CHECK(fabric_tensor_copy_to(t, out, sizeof out) == FABRIC_OK && memcmp(out, values, 24) == 0);

  /* Error paths: every one a bad argument (2), with a message naming what was wrong. */
  EXPECT_ERROR(fabric_tensor_copy_to(t, small, sizeof small), FABRIC_CONFIG_ERROR,
               "fabric_tensor_copy_to", "holds 8 bytes", "6 float32 elements take 24");
  EXPECT_ERROR(fabric_tensor_copy_to(t, NULL, 24), FABRIC_CONFIG_ERROR, "buffer is NULL");
  EXPECT_ERROR(fabric_tensor_size(t, 2, &size), FABRIC_CONFIG_ERROR, "dim 2 is out of range",
               "-2..1");
  EXPECT_ERROR(fabric_tensor_size(t, -3, &size), FABRIC_CONFIG_ERROR, "dim -3");
  EXPECT_ERROR(fabric_tensor_shape(t, got_shape, 1), FABRIC_CONFIG_ERROR, "capacity 1",
               "2 dimensions");
  EXPECT_ERROR(fabric_tensor_numel(t, NULL), FABRIC_CONFIG_ERROR, "numel is NULL");
  EXPECT_ERROR(fabric_tensor_create(values, bad_shape, 2, FABRIC_FLOAT32, &scalar),
               FABRIC_CONFIG_ERROR, "shape[1] is -1");
  EXPECT_ERROR(fabric_tensor_create(values, shape, 2, (fabric_dtype)99, &scalar),
               FABRIC_CONFIG_ERROR, "dtype 99 is no fabric_dtype");
  EXPECT_ERROR(fabric_tensor_create(NULL, shape, 2, FABRIC_FLOAT32, &scalar), FABRIC_CONFIG_ERROR,
               "data is NULL");
  EXPECT_ERROR(fabric_tensor_create(values, NULL, 2, FABRIC_FLOAT32, &scalar), FABRIC_CONFIG_ERROR,
               "shape is NULL");
  EXPECT_ERROR(fabric_tensor_create(values, shape, 1000, FABRIC_FLOAT32, &scalar),
               FABRIC_CONFIG_ERROR, "ndim 1000");
  EXPECT_ERROR(fabric_tensor_create(values, shape, 2, FABRIC_FLOAT32, NULL), FABRIC_CONFIG_ERROR,
               "out is NULL");
  {
    /* Empty, but with sizes whose strides no int64 holds: a bad argument, named, not a crash. */
    const int64_t huge_empty[] = {0, INT64_MAX, INT64_MAX};
    EXPECT_ERROR(fabric_tensor_create(NULL, huge_empty, 3, FABRIC_FLOAT32, &scalar),
                 FABRIC_CONFIG_ERROR, "fabric_tensor_create", "more bytes than int64 counts");
  }
  CHECK(scalar == NULL); /* out-pointers are written only on success */

  /* A scalar: no dimensions. Empty tensors need no data. */
  CHECK(fabric_tensor_create(values, NULL, 0, FABRIC_FLOAT32, &scalar) == FABRIC_OK);
  CHECK(fabric_tensor_ndim(scalar, &ndim) == FABRIC_OK && ndim == 0);
  CHECK(fabric_tensor_numel(scalar, &numel) == FABRIC_OK && numel == 1);
  EXPECT_ERROR(fabric_tensor_size(scalar, 0, &size), FABRIC_CONFIG_ERROR,
               "a scalar has no dimensions");
  CHECK(fabric_tensor_free(scalar) == FABRIC_OK);
  {
    const int64_t empty_shape[2] = {0, 5};
    fabric_tensor* e = NULL;
    CHECK(fabric_tensor_create(NULL, empty_shape, 2, FABRIC_INT64, &e) == FABRIC_OK);
    CHECK(fabric_tensor_nbytes(e, &nbytes) == FABRIC_OK && nbytes == 0);
    CHECK(fabric_tensor_copy_to(e, NULL, 0) == FABRIC_OK);
    CHECK(fabric_tensor_free(e) == FABRIC_OK);
  }

  /* Every dtype round-trips its bytes; bool stores nonzero bytes as 1. */
  for (d = 0; d <= (int)FABRIC_FLOAT8_E5M2; ++d) {
    const unsigned char bytes[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    unsigned char back[16];
    const int64_t two = 2;
    fabric_tensor* x = NULL;
    CHECK(fabric_tensor_create(bytes, &two, 1, (fabric_dtype)d, &x) == FABRIC_OK);
    CHECK(fabric_tensor_dtype(x, &dtype) == FABRIC_OK && (int)dtype == d);
    CHECK(fabric_tensor_nbytes(x, &nbytes) == FABRIC_OK && nbytes <= 16);
    CHECK(fabric_tensor_copy_to(x, back, sizeof back) == FABRIC_OK);
    if (d == (int)FABRIC_BOOL)
      CHECK(back[0] == 1 && back[1] == 1);
    else
      CHECK(memcmp(back, bytes, nbytes) == 0);
    CHECK(fabric_tensor_free(x) == FABRIC_OK);
  }

  /* A freed handle, and a handle of the other kind, are refused, not dereferenced. */
  CHECK(fabric_tensor_free(t) == FABRIC_OK);
  EXPECT_ERROR(fabric_tensor_numel(t, &numel), FABRIC_CONFIG_ERROR, "no live fabric_tensor");
  EXPECT_ERROR(fabric_tensor_free(t), FABRIC_CONFIG_ERROR, "no live fabric_tensor");
  EXPECT_ERROR(fabric_tensor_numel((const fabric_tensor*)&failures, &numel), FABRIC_CONFIG_ERROR,
               "no live fabric_tensor");
}

/* Fits mlp-tensors.yaml for 3 steps into RUN, resumes it to 5; the runs' error paths. */
static void test_runs(const char* run) {
  const char* config = FABRIC_CONFIG_DIR "/mlp-tensors.yaml";
  char run_set[600];
  const char* sets[2];
  const char* extend[1] = {"trainer.max_steps=5"};
  fabric_run_result result = {0, 0, 0};
  char* yaml = NULL;
  snprintf(run_set, sizeof run_set, "trainer.run_dir=%s", run);
  sets[0] = "trainer.max_steps=3";
  sets[1] = run_set;

  CHECK(fabric_validate(config, sets, 2, &yaml) == FABRIC_OK);
  CHECK(yaml != NULL && strstr(yaml, "max_steps: 3") != NULL && strstr(yaml, run) != NULL);
  fabric_string_free(yaml);
  CHECK(!exists(run)); /* validate writes nothing */
  CHECK(fabric_fit(config, sets, 2, &result) == FABRIC_OK);
  CHECK(result.step == 3 && isfinite(result.last_loss) && isnan(result.last_val_loss));
  CHECK(exists(path_in_tmp("run/checkpoints/last/model.safetensors")));
  CHECK(fabric_resume(run, extend, 1, &result) == FABRIC_OK);
  CHECK(result.step == 5);
  CHECK(fabric_resume(run, NULL, 0, NULL) == FABRIC_OK); /* nothing left to do */

  /* What fabric-train exits 2 for, with its messages. */
  {
    const char* typo[1] = {"trainer.max_step=3"};
    const char* two_devices[2] = {"fabric.devices=2", NULL};
    char other_run[600];
    EXPECT_ERROR(fabric_fit(config, typo, 1, NULL), FABRIC_CONFIG_ERROR, "max_step",
                 "did you mean");
    EXPECT_ERROR(fabric_validate(path_in_tmp("missing.yaml"), NULL, 0, NULL), FABRIC_CONFIG_ERROR,
                 "missing.yaml");
    snprintf(other_run, sizeof other_run, "trainer.run_dir=%s", path_in_tmp("run-2dev"));
    two_devices[1] = other_run;
    EXPECT_ERROR(fabric_fit(config, two_devices, 2, NULL), FABRIC_CONFIG_ERROR, "fabric.devices=2",
                 "2 processes", "fabric-train fit");
    CHECK(!exists(path_in_tmp("run-2dev")));
    EXPECT_ERROR(fabric_resume(run, two_devices, 1, NULL), FABRIC_CONFIG_ERROR, "fabric.devices=2",
                 "fabric-train");
    EXPECT_ERROR(fabric_fit(NULL, NULL, 0, NULL), FABRIC_CONFIG_ERROR, "config_path is NULL");
    EXPECT_ERROR(fabric_fit(config, NULL, 2, NULL), FABRIC_CONFIG_ERROR, "sets is NULL");
    two_devices[1] = NULL;
    EXPECT_ERROR(fabric_fit(config, two_devices, 2, NULL), FABRIC_CONFIG_ERROR, "sets[1] is NULL");
    EXPECT_ERROR(fabric_resume(path_in_tmp("no-such-run"), NULL, 0, NULL), FABRIC_CONFIG_ERROR,
                 "does not exist", "a run directory");
  }
  /* A directory that exists but is no run: fabric-train's exit 1. */
  EXPECT_ERROR(fabric_resume(tmp, NULL, 0, NULL), FABRIC_ERROR, "not a run directory");
}

/* The trained MLP's forward; its values against the C++ API are test_c_api.cpp's. */
static void test_model(const char* run) {
  fabric_model* model = NULL;
  fabric_tensor* x = NULL;
  fabric_tensor* y = NULL;
  fabric_tensor* wrong = NULL;
  static float features[4 * 784];
  const int64_t shape[2] = {4, 784};
  const int64_t wrong_shape[2] = {4, 5};
  int64_t out_shape[2] = {0, 0};
  float logits[40];
  fabric_dtype dtype = FABRIC_INT8;
  char* text = NULL;
  int i, finite = 1;
  for (i = 0; i < 4 * 784; ++i) features[i] = (float)sin(0.01 * i);

  CHECK(fabric_model_load(run, &model) == FABRIC_OK);
  CHECK(fabric_tensor_create(features, shape, 2, FABRIC_FLOAT32, &x) == FABRIC_OK);
  CHECK(fabric_model_forward(model, x, &y) == FABRIC_OK);
  CHECK(fabric_tensor_shape(y, out_shape, 2) == FABRIC_OK && out_shape[0] == 4 &&
        out_shape[1] == 10);
  CHECK(fabric_tensor_dtype(y, &dtype) == FABRIC_OK && dtype == FABRIC_FLOAT32);
  CHECK(fabric_tensor_copy_to(y, logits, sizeof logits) == FABRIC_OK);
  for (i = 0; i < 40; ++i) finite = finite && isfinite(logits[i]);
  CHECK(finite && logits[0] != logits[1]);
  {
    /* The same forward again gives the same values (eval mode, no state kept). */
    fabric_tensor* y2 = NULL;
    float again[40];
    CHECK(fabric_model_forward(model, x, &y2) == FABRIC_OK);
    CHECK(fabric_tensor_copy_to(y2, again, sizeof again) == FABRIC_OK);
    CHECK(memcmp(again, logits, sizeof logits) == 0);
    CHECK(fabric_tensor_free(y2) == FABRIC_OK);
  }

  /* The model's own errors are FABRIC_ERROR with the library's message. */
  CHECK(fabric_tensor_create(features, wrong_shape, 2, FABRIC_FLOAT32, &wrong) == FABRIC_OK);
  EXPECT_ERROR(fabric_model_forward(model, wrong, &y), FABRIC_ERROR, "784");
  EXPECT_ERROR(fabric_model_forward(model, NULL, &y), FABRIC_CONFIG_ERROR, "input is NULL");
  EXPECT_ERROR(fabric_model_forward(model, x, NULL), FABRIC_CONFIG_ERROR, "output is NULL");
  EXPECT_ERROR(fabric_model_forward((fabric_model*)x, x, &y), FABRIC_CONFIG_ERROR,
               "no live fabric_model");
  EXPECT_ERROR(fabric_model_generate(model, "a", 3, 1.0, 0, 0, NULL, NULL, &text),
               FABRIC_CONFIG_ERROR, "holds a mlp model", "GPT");
  EXPECT_ERROR(fabric_model_load(path_in_tmp("nothing-here"), &model), FABRIC_CONFIG_ERROR,
               "does not exist", "a checkpoint");
  EXPECT_ERROR(fabric_model_load(tmp, &model), FABRIC_ERROR, "fabric_model_load");
  EXPECT_ERROR(fabric_model_load(run, NULL), FABRIC_CONFIG_ERROR, "out is NULL");
  CHECK(fabric_tensor_free(wrong) == FABRIC_OK);
  CHECK(fabric_tensor_free(y) == FABRIC_OK);
  CHECK(fabric_tensor_free(x) == FABRIC_OK);
  CHECK(fabric_model_free(model) == FABRIC_OK);
  EXPECT_ERROR(fabric_model_free(model), FABRIC_CONFIG_ERROR, "no live fabric_model");
  CHECK(fabric_model_free(NULL) == FABRIC_OK);
}

/* fabric_export writes the bytes `fabric-train export` writes, as stored and dequantized. */
static void test_export(const char* run) {
  char command[2048];
  int status = 0;
  char* out;
  CHECK(fabric_export(run, path_in_tmp("exports/c.safetensors"), 0, FABRIC_FLOAT32) == FABRIC_OK);
  snprintf(command, sizeof command, "%s export %s %s >/dev/null 2>&1", FABRIC_TRAIN_EXE, run,
           path_in_tmp("exports/cli.safetensors"));
  free(run_command(command, &status));
  CHECK(status == 0);
  CHECK(same_files(path_in_tmp("exports/c.safetensors"), path_in_tmp("exports/cli.safetensors")));

  CHECK(fabric_export(run, path_in_tmp("exports/c16.safetensors"), 1, FABRIC_FLOAT16) == FABRIC_OK);
  snprintf(command, sizeof command, "%s export %s %s --dequantize --dtype float16 >/dev/null 2>&1",
           FABRIC_TRAIN_EXE, run, path_in_tmp("exports/cli16.safetensors"));
  out = run_command(command, &status);
  free(out);
  CHECK(status == 0);
  CHECK(
      same_files(path_in_tmp("exports/c16.safetensors"), path_in_tmp("exports/cli16.safetensors")));
  CHECK(!same_files(path_in_tmp("exports/c16.safetensors"), path_in_tmp("exports/c.safetensors")));

  EXPECT_ERROR(fabric_export(run, path_in_tmp("x.safetensors"), 0, FABRIC_FLOAT16),
               FABRIC_CONFIG_ERROR, "dtype float16 needs dequantize");
  EXPECT_ERROR(fabric_export(run, path_in_tmp("x.safetensors"), 1, FABRIC_INT64),
               FABRIC_CONFIG_ERROR, "dtype", "int64");
  EXPECT_ERROR(
      fabric_export(path_in_tmp("nothing-here"), path_in_tmp("x.safetensors"), 0, FABRIC_FLOAT32),
      FABRIC_CONFIG_ERROR, "does not exist");
  EXPECT_ERROR(fabric_export(run, NULL, 0, FABRIC_FLOAT32), FABRIC_CONFIG_ERROR,
               "out_file is NULL");
  EXPECT_ERROR(fabric_export(tmp, path_in_tmp("x.safetensors"), 0, FABRIC_FLOAT32), FABRIC_ERROR,
               "export");
  CHECK(!exists(path_in_tmp("x.safetensors")));
  /* An empty path is a bad argument; a run directory's config.yaml is not overwritten (resume
     needs it); a dequantized dtype it cannot write names the function. */
  EXPECT_ERROR(fabric_export(run, "", 0, FABRIC_FLOAT32), FABRIC_CONFIG_ERROR,
               "export: the output path is empty");
  {
    char config[600];
    snprintf(config, sizeof config, "%s/config.yaml", run);
    EXPECT_ERROR(fabric_export(run, config, 0, FABRIC_FLOAT32), FABRIC_ERROR,
                 "config.yaml, which resume");
  }
  EXPECT_ERROR(fabric_export(run, path_in_tmp("x.safetensors"), 1, FABRIC_FLOAT64),
               FABRIC_CONFIG_ERROR, "fabric_export: dtype");
}

struct collected {
  char text[4096];
  size_t used;
  int pieces;
};

/* A callback that makes a failing API call: the generate that called it still ends with "". */
static void collect_after_a_failed_call(const char* text, size_t length, void* user_data) {
  size_t n = 0;
  (void)text;
  (void)length;
  (void)fabric_tensor_ndim(NULL, &n);
  ++*(int*)user_data;
}

static void collect(const char* text, size_t length, void* user_data) {
  struct collected* c = (struct collected*)user_data;
  if (c->used + length < sizeof c->text) {
    memcpy(c->text + c->used, text, length);
    c->used += length;
    c->text[c->used] = '\0';
  }
  ++c->pieces;
}

/* A tiny GPT on text: generate gives `fabric-train sample`'s bytes for the same seed. */
static void test_gpt(void) {
  FILE* f = fopen(path_in_tmp("t.txt"), "w");
  char config[1024];
  char command[2048];
  static char run[512];
  fabric_model* gpt = NULL;
  struct collected pieces;
  char* text = NULL;
  char* cli = NULL;
  int i, status = 0;
  fabric_tensor* ids = NULL;
  fabric_tensor* logits = NULL;
  const int64_t id_values[5] = {0, 1, 2, 3, 1};
  const int64_t id_shape[2] = {1, 5};
  const float float_ids[5] = {0, 1, 2, 3, 1};
  fabric_tensor* wrong_ids = NULL;
  fabric_tensor* unused = NULL;
  size_t ndim = 0;

  snprintf(run, sizeof run, "%s/gpt-run", tmp);
  for (i = 0; i < 20; ++i) fputs("the cat sat on the mat. ", f);
  fclose(f);
  f = fopen(path_in_tmp("gpt.yaml"), "w");
  fprintf(f,
          "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
          "data: {kind: text, path: %s}\n"
          "optimizer: {name: adamw, lr: 0.01}\n"
          "trainer: {max_steps: 2, batch_size: 4, run_dir: %s}\n",
          path_in_tmp("t.txt"), run);
  fclose(f);
  snprintf(config, sizeof config, "%s", path_in_tmp("gpt.yaml"));
  CHECK(fabric_fit(config, NULL, 0, NULL) == FABRIC_OK);
  CHECK(fabric_model_load(run, &gpt) == FABRIC_OK);

  memset(&pieces, 0, sizeof pieces);
  CHECK(fabric_model_generate(gpt, "the cat", 40, 0.8, 0, 5, collect, &pieces, &text) == FABRIC_OK);
  {
    int calls = 0;
    CHECK(fabric_model_generate(gpt, "the", 3, 0.8, 0, 5, collect_after_a_failed_call, &calls,
                                NULL) == FABRIC_OK);
    CHECK(calls > 0);
    CHECK(strcmp(fabric_last_error(), "") == 0);
  }
  CHECK(text != NULL && strlen(text) == 7 + 40 && strncmp(text, "the cat", 7) == 0);
  CHECK(text != NULL && strcmp(pieces.text, text) == 0);
  CHECK(pieces.pieces == 41); /* the prompt, then each character as it is drawn */
  snprintf(command, sizeof command,
           "%s sample %s --prompt 'the cat' --tokens 40 --temperature 0.8 --seed 5 2>/dev/null",
           FABRIC_TRAIN_EXE, run);
  cli = run_command(command, &status);
  CHECK(status == 0 && cli != NULL && text != NULL && strlen(cli) == strlen(text) + 1 &&
        strncmp(cli, text, strlen(text)) == 0 && cli[strlen(text)] == '\n');
  if (cli != NULL && text != NULL && strncmp(cli, text, strlen(text)) != 0)
    printf("  C API: '%s'\n  fabric-train sample: '%s'\n", text, cli);
  free(cli);
  fabric_string_free(text);
  text = NULL;
  {
    /* top_k and greedy decoding, through the callback alone. */
    struct collected greedy;
    memset(&greedy, 0, sizeof greedy);
    CHECK(fabric_model_generate(gpt, "the", 10, 0.0, 3, 0, collect, &greedy, NULL) == FABRIC_OK);
    CHECK(greedy.used == 13);
  }

  /* The GPT's forward on token ids: logits (batch, time, vocab). */
  CHECK(fabric_tensor_create(id_values, id_shape, 2, FABRIC_INT64, &ids) == FABRIC_OK);
  CHECK(fabric_model_forward(gpt, ids, &logits) == FABRIC_OK);
  CHECK(fabric_tensor_ndim(logits, &ndim) == FABRIC_OK && ndim == 3);
  /* Float ids: named as the caller passed them, before the plugin converts floating inputs. */
  CHECK(fabric_tensor_create(float_ids, id_shape, 2, FABRIC_FLOAT32, &wrong_ids) == FABRIC_OK);
  EXPECT_ERROR(fabric_model_forward(gpt, wrong_ids, &unused), FABRIC_CONFIG_ERROR, "token indices",
               "float32");
  CHECK(fabric_tensor_free(wrong_ids) == FABRIC_OK);

  EXPECT_ERROR(fabric_model_generate(gpt, "the", -1, 1.0, 0, 0, collect, &pieces, NULL),
               FABRIC_CONFIG_ERROR, "tokens", ">= 0", "-1");
  EXPECT_ERROR(fabric_model_generate(gpt, "the", 1, NAN, 0, 0, collect, &pieces, NULL),
               FABRIC_CONFIG_ERROR, "temperature");
  EXPECT_ERROR(fabric_model_generate(gpt, "the", 1, 1.0, -5, 0, collect, &pieces, NULL),
               FABRIC_CONFIG_ERROR, "top_k", ">= 0", "-5");
  EXPECT_ERROR(fabric_model_generate(gpt, NULL, 1, 1.0, 0, 0, collect, &pieces, NULL),
               FABRIC_CONFIG_ERROR, "prompt is NULL");
  EXPECT_ERROR(fabric_model_generate(gpt, "the", 1, 1.0, 0, 0, NULL, NULL, NULL),
               FABRIC_CONFIG_ERROR, "both NULL");
  EXPECT_ERROR(fabric_model_generate(gpt, "the dog", 1, 1.0, 0, 0, collect, &pieces, NULL),
               FABRIC_CONFIG_ERROR, "'d'");
  CHECK(fabric_tensor_free(logits) == FABRIC_OK);
  CHECK(fabric_tensor_free(ids) == FABRIC_OK);
  CHECK(fabric_model_free(gpt) == FABRIC_OK);
}

/* README's example is FABRIC_C_API_EXAMPLE word for word, and its program runs. */
static void test_readme_example(void) {
  char* readme = slurp(FABRIC_README, NULL);
  char* example = slurp(FABRIC_C_API_EXAMPLE, NULL);
  char command[2048];
  int status = 0;
  char* out;
  CHECK(readme != NULL && example != NULL && strstr(readme, example) != NULL);
  snprintf(command, sizeof command, "%s %s/mlp-tensors.yaml %s", FABRIC_C_API_EXAMPLE_EXE,
           FABRIC_CONFIG_DIR, path_in_tmp("example-run"));
  out = run_command(command, &status);
  CHECK(status == 0 && out != NULL && strstr(out, "3 steps") != NULL &&
        strstr(out, "logits: ") != NULL);
  free(out);
  free(readme);
  free(example);
}

int main(void) {
  char command[512];
  static char run[512];
  snprintf(tmp, sizeof tmp, "/tmp/fabric_c_api_test.XXXXXX");
  if (mkdtemp(tmp) == NULL) {
    printf("FAIL: mkdtemp\n");
    return 1;
  }
  snprintf(run, sizeof run, "%s/run", tmp);
  test_version_and_errors();
  test_tensors();
  test_runs(run);
  test_model(run);
  test_export(run);
  test_gpt();
  test_readme_example();
  snprintf(command, sizeof command, "rm -rf %s", tmp);
  if (failures == 0 && system(command) != 0) printf("could not remove %s\n", tmp);
  printf("c_api_test: %d failure(s)%s%s\n", failures, failures ? "; files kept in " : "",
         failures ? tmp : "");
  return failures == 0 ? 0 : 1;
}
