// firmware_gen's streaming harness: the generated NAME_stream_main.cc (frontend + model +
// detector, built with FIRMWARE_GEN_NO_MAIN; sliding window or streaming step model) fed a
// recording through semihosting.
//
//   harness AUDIO STRIDE FEATURES   AUDIO: int16 samples; STRIDE: samples per step (the last
//                                   step may be shorter); FEATURES: written with every int8
//                                   feature frame, in order (the ring's newest row)
//
// Prints FG_STEP i invokes per step, FG_DETECT label sum end_frame per detection, FG_STREAM
// key value figures and FG_DONE steps. Each step's push runs between fg_invoke_begin and
// fg_invoke_end, so the instruction-count plugin reports one count per step; detections are
// printed after fg_invoke_end so printing is not counted.
#define FIRMWARE_GEN_NO_MAIN
#include FG_STREAM_SOURCE

#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>

extern "C" void DebugLog(const char* format, va_list args) { vprintf(format, args); }
extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format,
                              va_list vlist) {
  return vsnprintf(buffer, buf_size, format, vlist);
}

extern "C" __attribute__((noinline, used)) void fg_invoke_begin(void) { __asm__ volatile(""); }
extern "C" __attribute__((noinline, used)) void fg_invoke_end(void) { __asm__ volatile(""); }

static int32_t g_found[FG_MAX_DETECTIONS][3];
static int g_num_found;

static void on_detection(int32_t label, int32_t sum, uint32_t end_frame) {
  if (g_num_found < FG_MAX_DETECTIONS) {
    g_found[g_num_found][0] = label;
    g_found[g_num_found][1] = sum;
    g_found[g_num_found][2] = (int32_t)end_frame;
  }
  g_num_found++;
}

static int16_t g_chunk[4096];

int main(int argc, char** argv) {
  if (argc < 4) {
    printf("FG_ERROR usage: harness AUDIO STRIDE FEATURES\n");
    return 2;
  }
  const size_t stride = (size_t)strtoul(argv[2], NULL, 0);
  if (stride == 0 || stride > sizeof(g_chunk) / sizeof(g_chunk[0])) {
    printf("FG_ERROR stride %lu out of range\n", (unsigned long)stride);
    return 2;
  }
  const int heap_before = mallinfo().uordblks;
  if (FG_STREAM_INIT() != 0) {
    printf("FG_ALLOC fail\n");
    printf("FG_ERROR frontend or TFLM setup failed (arena %u bytes)\n",
           static_cast<unsigned>(sizeof(FG_STREAM_ARENA)));
    return 1;
  }
  const int heap_after = mallinfo().uordblks;
  printf("FG_ALLOC ok %u\n", static_cast<unsigned>(FG_STREAM_STATE.interpreter->arena_used_bytes()));
  FILE* in = fopen(argv[1], "rb");
  FILE* features = fopen(argv[3], "wb");
  if (in == NULL || features == NULL) {
    printf("FG_ERROR cannot open %s or %s through semihosting\n", argv[1], argv[3]);
    return 2;
  }
  int steps = 0;
  size_t n;
  uint32_t frames = 0;
  while ((n = fread(g_chunk, sizeof(int16_t), stride, in)) > 0) {
    g_num_found = 0;
    fg_invoke_begin();
    const int invokes = FG_STREAM_PUSH(g_chunk, n, on_detection);
    fg_invoke_end();
    if (invokes < 0) {
      printf("FG_ERROR Invoke failed at step %d\n", steps);
      return 1;
    }
    if (g_num_found > FG_MAX_DETECTIONS) {
      printf("FG_ERROR %d detections in one step (at most %d reported)\n", g_num_found,
             FG_MAX_DETECTIONS);
      return 1;
    }
    if (FG_STREAM_STATE.frames > frames + 1) {
      printf("FG_ERROR step %d made %lu frames (one at most: STRIDE must be the frame stride)\n",
             steps, (unsigned long)(FG_STREAM_STATE.frames - frames));
      return 1;
    }
    if (FG_STREAM_STATE.frames > frames) {
      fwrite(FG_STREAM_STATE.newest, 1, kStreamFeatures, features);
      frames = FG_STREAM_STATE.frames;
    }
    for (int i = 0; i < g_num_found; ++i) {
      printf("FG_DETECT %ld %ld %ld\n", (long)g_found[i][0], (long)g_found[i][1],
             (long)g_found[i][2]);
    }
    printf("FG_STEP %d %d\n", steps, invokes);
    steps++;
  }
  fclose(in);
  fclose(features);
  printf("FG_STREAM frames %lu\n", (unsigned long)FG_STREAM_STATE.frames);
  printf("FG_STREAM arena_size %u\n", static_cast<unsigned>(sizeof(FG_STREAM_ARENA)));
  printf("FG_STREAM arena_used %u\n",
         static_cast<unsigned>(FG_STREAM_STATE.interpreter->arena_used_bytes()));
  printf("FG_STREAM frontend_heap %d\n", heap_after - heap_before);
  printf("FG_STREAM state_bytes %u\n", static_cast<unsigned>(sizeof(FG_STREAM_STATE)));
  printf("FG_DONE %d\n", steps);
  return 0;
}
