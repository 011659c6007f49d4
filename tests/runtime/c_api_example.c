/* Trains a config for 3 steps, then runs the trained model on one input (mlp-tensors.yaml's MLP:
 * 784 features in, 10 logits out). Usage: c_api_example CONFIG.yaml RUN_DIR */
#include <fabric/runtime/c_api.h>
#include <stdio.h>

/* Says what failed, with the library's message, and gives back the status: 1 (FABRIC_ERROR) or
 * 2 (FABRIC_CONFIG_ERROR), the exit status fabric-train would give. */
static int failed(fabric_status status, const char* what) {
  fprintf(stderr, "%s: %s\n", what, fabric_last_error());
  return (int)status;
}

int main(int argc, char** argv) {
  char run_dir_set[4096];
  const char* sets[2];
  fabric_run_result run;
  fabric_model* model = NULL;
  fabric_tensor* input = NULL;
  fabric_tensor* logits = NULL;
  float features[784] = {0};
  const int64_t shape[2] = {1, 784};
  float out[10];
  fabric_status s;
  int i;

  if (argc != 3) {
    fprintf(stderr, "usage: %s CONFIG.yaml RUN_DIR\n", argv[0]);
    return 2;
  }
  snprintf(run_dir_set, sizeof run_dir_set, "trainer.run_dir=%s", argv[2]);
  sets[0] = "trainer.max_steps=3";
  sets[1] = run_dir_set;
  s = fabric_fit(argv[1], sets, 2, &run); /* as `fabric-train fit CONFIG --set ...` */
  if (s != FABRIC_OK) return failed(s, "fit");
  printf("fabric %s: %lld steps, last loss %.4f\n", fabric_version(), (long long)run.step,
         run.last_loss);

  s = fabric_model_load(argv[2], &model); /* the run's checkpoints/last */
  if (s != FABRIC_OK) return failed(s, "load");
  features[0] = 1.0f;
  s = fabric_tensor_create(features, shape, 2, FABRIC_FLOAT32, &input); /* copies features */
  if (s == FABRIC_OK) s = fabric_model_forward(model, input, &logits);
  if (s == FABRIC_OK) s = fabric_tensor_copy_to(logits, out, sizeof out);
  if (s != FABRIC_OK) {
    failed(s, "forward");
  } else {
    for (i = 0; i < 10; ++i) printf("%s%.4f", i ? " " : "logits: ", out[i]);
    printf("\n");
  }
  /* Every handle made is the caller's to free (NULL is fine). */
  fabric_tensor_free(logits);
  fabric_tensor_free(input);
  fabric_model_free(model);
  return (int)s;
}
