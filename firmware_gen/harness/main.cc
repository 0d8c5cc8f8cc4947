// firmware_gen's on-target harness: the generated model and op resolver, TFLM, semihosting I/O.
//
//   harness alloc ARENA          AllocateTensors() with an ARENA-byte arena; print the result
//   harness run ARENA IN OUT     also Invoke() once per record of IN (every input tensor's bytes
//                                in order), appending every output tensor's bytes to OUT
//
// Lines starting with FG_ are for firmware_gen.qemu; anything else is TFLM's own log. The arena
// is one static buffer of FG_ARENA_MAX bytes of which the first ARENA are given to TFLM, so an
// arena bisection needs one ELF and one QEMU run per probe, no relinking.
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include FG_MODEL_HEADER
#include FG_RESOLVER_HEADER

#ifndef FG_ARENA_MAX
#define FG_ARENA_MAX (2u * 1024u * 1024u)
#endif

extern "C" void DebugLog(const char* format, va_list args) { vprintf(format, args); }
extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format,
                              va_list vlist) {
  return vsnprintf(buffer, buf_size, format, vlist);
}

extern "C" void fg_systick_start(void);
extern "C" uint64_t fg_systick_read(void);

// The instruction-count plugin snapshots its counter when these two are entered.
extern "C" __attribute__((noinline, used)) void fg_invoke_begin(void) { __asm__ volatile(""); }
extern "C" __attribute__((noinline, used)) void fg_invoke_end(void) { __asm__ volatile(""); }

alignas(16) static uint8_t g_arena[FG_ARENA_MAX];

int main(int argc, char** argv) {
  if (argc < 3 || (strcmp(argv[1], "run") == 0 && argc < 5)) {
    printf("FG_ERROR usage: harness alloc ARENA | harness run ARENA IN OUT\n");
    return 2;
  }
  const bool run = strcmp(argv[1], "run") == 0;
  const unsigned long arena = strtoul(argv[2], nullptr, 0);
  if (arena > sizeof(g_arena)) {
    printf("FG_ERROR arena %lu exceeds the harness buffer of %u bytes\n", arena,
           static_cast<unsigned>(sizeof(g_arena)));
    return 2;
  }
  static FG_NAMESPACE::OpResolver resolver;
  if (FG_NAMESPACE::RegisterOps(resolver) != kTfLiteOk) {
    printf("FG_ERROR op resolver registration failed\n");
    return 2;
  }
  const tflite::Model* model = tflite::GetModel(FG_MODEL_DATA);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    printf("FG_ERROR model schema version %lu, TFLM expects %d\n",
           static_cast<unsigned long>(model->version()), TFLITE_SCHEMA_VERSION);
    return 2;
  }
  tflite::MicroInterpreter interpreter(model, resolver, g_arena, arena);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    printf("FG_ALLOC fail\n");
    return 1;
  }
  printf("FG_ALLOC ok %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  if (!run) return 0;

  FILE* in = fopen(argv[3], "rb");
  FILE* out = fopen(argv[4], "wb");
  if (in == nullptr || out == nullptr) {
    printf("FG_ERROR cannot open %s or %s through semihosting\n", argv[3], argv[4]);
    return 2;
  }
  int clips = 0;
  for (;; ++clips) {
    size_t got = 0, want = 0;
    for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
      TfLiteTensor* t = interpreter.input(i);
      want += t->bytes;
      got += fread(t->data.raw, 1, t->bytes, in);
    }
    if (got == 0) break;
    if (got != want) {
      printf("FG_ERROR input file ends inside record %d (%u of %u bytes)\n", clips,
             static_cast<unsigned>(got), static_cast<unsigned>(want));
      return 2;
    }
    fg_systick_start();
    fg_invoke_begin();
    const TfLiteStatus status = interpreter.Invoke();
    fg_invoke_end();
    const uint64_t ticks = fg_systick_read();
    if (status != kTfLiteOk) {
      printf("FG_INVOKE fail %d\n", clips);
      return 1;
    }
    printf("FG_INVOKE ok %d %llu\n", clips, static_cast<unsigned long long>(ticks));
    for (size_t i = 0; i < interpreter.outputs_size(); ++i) {
      TfLiteTensor* t = interpreter.output(i);
      if (fwrite(t->data.raw, 1, t->bytes, out) != t->bytes) {
        printf("FG_ERROR cannot write %s\n", argv[4]);
        return 2;
      }
    }
    interpreter.Reset();  // a stateful graph starts every record fresh (as tfkws run_tflm does)
  }
  fclose(in);
  fclose(out);
  printf("FG_DONE %d\n", clips);
  return 0;
}
