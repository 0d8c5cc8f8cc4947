/* firmware_gen's frontend harness: TFLM's micro frontend C library (the code the
 * audio_microfrontend TensorFlow op wraps) on the target, fed int16 clips through semihosting.
 *
 *   frontend CONFIG AUDIO OUT SAMPLES
 *
 * CONFIG: text "key value" lines (sample_rate, window_size_ms, window_stride_ms, num_channels,
 * upper_band_limit, lower_band_limit, smoothing_bits, even_smoothing, odd_smoothing,
 * min_signal_remaining, enable_pcan, pcan_strength, pcan_offset, gain_bits, enable_log,
 * scale_shift). AUDIO: clips of SAMPLES int16 each. OUT: the uint16 features of every clip,
 * frame after frame. Like the TensorFlow op, the state is populated afresh for every clip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

/* The instruction-count plugin snapshots its counter when these two are entered. */
__attribute__((noinline, used)) void fg_invoke_begin(void) { __asm__ volatile(""); }
__attribute__((noinline, used)) void fg_invoke_end(void) { __asm__ volatile(""); }

static int read_config(const char* path, struct FrontendConfig* c, int* sample_rate) {
  FILE* f = fopen(path, "r");
  char key[64];
  double v;
  int seen = 0;
  if (!f) return -1;
  FrontendFillConfigWithDefaults(c);
  while (fscanf(f, "%63s %lf", key, &v) == 2) {
    seen++;
    if (!strcmp(key, "sample_rate")) *sample_rate = (int)v;
    else if (!strcmp(key, "window_size_ms")) c->window.size_ms = (size_t)v;
    else if (!strcmp(key, "window_stride_ms")) c->window.step_size_ms = (size_t)v;
    else if (!strcmp(key, "num_channels")) c->filterbank.num_channels = (int)v;
    else if (!strcmp(key, "upper_band_limit")) c->filterbank.upper_band_limit = (float)v;
    else if (!strcmp(key, "lower_band_limit")) c->filterbank.lower_band_limit = (float)v;
    else if (!strcmp(key, "smoothing_bits")) c->noise_reduction.smoothing_bits = (int)v;
    else if (!strcmp(key, "even_smoothing")) c->noise_reduction.even_smoothing = (float)v;
    else if (!strcmp(key, "odd_smoothing")) c->noise_reduction.odd_smoothing = (float)v;
    else if (!strcmp(key, "min_signal_remaining"))
      c->noise_reduction.min_signal_remaining = (float)v;
    else if (!strcmp(key, "enable_pcan")) c->pcan_gain_control.enable_pcan = (int)v;
    else if (!strcmp(key, "pcan_strength")) c->pcan_gain_control.strength = (float)v;
    else if (!strcmp(key, "pcan_offset")) c->pcan_gain_control.offset = (float)v;
    else if (!strcmp(key, "gain_bits")) c->pcan_gain_control.gain_bits = (int)v;
    else if (!strcmp(key, "enable_log")) c->log_scale.enable_log = (int)v;
    else if (!strcmp(key, "scale_shift")) c->log_scale.scale_shift = (int)v;
    else {
      printf("FG_ERROR unknown frontend setting %s\n", key);
      fclose(f);
      return -1;
    }
  }
  fclose(f);
  return seen;
}

int main(int argc, char** argv) {
  struct FrontendConfig config;
  int sample_rate = 16000;
  if (argc < 5) {
    printf("FG_ERROR usage: frontend CONFIG AUDIO OUT SAMPLES\n");
    return 2;
  }
  if (read_config(argv[1], &config, &sample_rate) < 0) {
    printf("FG_ERROR cannot read frontend config %s\n", argv[1]);
    return 2;
  }
  const size_t samples = (size_t)strtoul(argv[4], NULL, 0);
  const size_t channels = (size_t)config.filterbank.num_channels;
  const size_t max_frames = samples / (config.window.step_size_ms * sample_rate / 1000) + 2;
  int16_t* audio = (int16_t*)malloc(samples * sizeof(int16_t));
  uint16_t* features = (uint16_t*)malloc(max_frames * channels * sizeof(uint16_t));
  FILE* in = fopen(argv[2], "rb");
  FILE* out = fopen(argv[3], "wb");
  if (!audio || !features || !in || !out) {
    printf("FG_ERROR cannot allocate or open the audio/output files\n");
    return 2;
  }
  int clips = 0;
  int frames = 0;
  while (fread(audio, sizeof(int16_t), samples, in) == samples) {
    struct FrontendState state;
    memset(&state, 0, sizeof(state));
    if (!FrontendPopulateState(&config, &state, sample_rate)) {
      printf("FG_ERROR FrontendPopulateState failed\n");
      return 2;
    }
    frames = 0;
    const int16_t* p = audio;
    size_t left = samples;
    fg_invoke_begin();
    while (left > 0) {
      size_t read = 0;
      struct FrontendOutput o = FrontendProcessSamples(&state, p, left, &read);
      p += read;
      left -= read;
      if (o.values != NULL && (size_t)frames < max_frames) {
        memcpy(features + (size_t)frames * channels, o.values, o.size * sizeof(uint16_t));
        frames++;
      }
    }
    fg_invoke_end();
    fwrite(features, sizeof(uint16_t), (size_t)frames * channels, out);
    FrontendFreeStateContents(&state);
    printf("FG_INVOKE ok %d 0\n", clips);
    clips++;
  }
  fclose(in);
  fclose(out);
  printf("FG_FRONTEND %d %d %d\n", clips, frames, config.filterbank.num_channels);
  printf("FG_DONE %d\n", clips);
  return 0;
}
