/* A C99 app on the installed package (README "C API"): <fabric/runtime/c_api.h> and
 * fabric::runtime from C. A tensor round trip, an error's status and message, and, given
 * CONFIG.yaml and RUN_DIR, a 2-step fit whose checkpoint's model runs on one input. */
#include <fabric/runtime/c_api.h>
#include <stdio.h>
#include <string.h>

static int check(int ok, const char* what) {
  if (!ok) printf("FAIL: %s (last error: %s)\n", what, fabric_last_error());
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  const double values[3] = {1.5, -2.0, 4.25};
  const int64_t shape[1] = {3};
  double back[3] = {0, 0, 0};
  fabric_tensor* t = NULL;
  fabric_model* model = NULL;
  int failures = 0;

  failures +=
      check(fabric_tensor_create(values, shape, 1, FABRIC_FLOAT64, &t) == FABRIC_OK &&
                fabric_tensor_copy_to(t, back, sizeof back) == FABRIC_OK &&
                memcmp(back, values, sizeof back) == 0 && fabric_tensor_free(t) == FABRIC_OK,
            "a float64 tensor round trip");
  failures += check(fabric_model_load("/nonexistent/run", &model) == FABRIC_CONFIG_ERROR &&
                        strstr(fabric_last_error(), "does not exist") != NULL,
                    "a missing checkpoint is a config error with a message");
  if (argc == 3) {
    char run_dir_set[4096];
    const char* sets[2];
    float features[784] = {0};
    const int64_t input_shape[2] = {1, 784};
    fabric_tensor* input = NULL;
    fabric_tensor* logits = NULL;
    int64_t classes = 0;
    snprintf(run_dir_set, sizeof run_dir_set, "trainer.run_dir=%s", argv[2]);
    sets[0] = "trainer.max_steps=2";
    sets[1] = run_dir_set;
    failures += check(
        fabric_fit(argv[1], sets, 2, NULL) == FABRIC_OK &&
            fabric_model_load(argv[2], &model) == FABRIC_OK &&
            fabric_tensor_create(features, input_shape, 2, FABRIC_FLOAT32, &input) == FABRIC_OK &&
            fabric_model_forward(model, input, &logits) == FABRIC_OK &&
            fabric_tensor_size(logits, -1, &classes) == FABRIC_OK && classes == 10,
        "fit CONFIG.yaml, load its checkpoint and run the model");
    fabric_tensor_free(logits);
    fabric_tensor_free(input);
    fabric_model_free(model);
  }
  printf("C consumer: fabric %s, %d failure(s)\n", fabric_version(), failures);
  return failures == 0 ? 0 : 1;
}
