/* QEMU TCG plugin: instructions executed between entering fg_invoke_begin and fg_invoke_end.
 *
 * Debian's QEMU 7.2 ships no qemu-plugin.h, so the few declarations used here are written out
 * from the documented plugin API (docs/devel/tcg-plugins.rst, include/qemu/qemu-plugin.h of QEMU
 * 7.2, API version 1). Every translated block adds its instruction count to a counter (inline,
 * cheap); the first instruction of each marker function gets a callback that snapshots it.
 *
 *   -plugin libicount.so,begin=0xADDR,end=0xADDR,out=FILE   -> one count per line in FILE */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t {
  const char* target_name;
  struct {
    int min;
    int cur;
  } version;
  bool system_emulation;
  union {
    struct {
      int smp_vcpus;
      int max_vcpus;
    } system;
  };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void* userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void* userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb* tb);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb* tb, enum qemu_plugin_op op,
                                              void* ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void* userdata);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

#define MAX_INVOKES 100000
static uint64_t g_insns, g_begin_at, g_begin_addr, g_end_addr;
static uint64_t g_counts[MAX_INVOKES];
static size_t g_n;
static bool g_open;
static char g_out[1024];

static void on_begin(unsigned int vcpu, void* udata) {
  (void)vcpu, (void)udata;
  g_begin_at = g_insns;
  g_open = true;
}

static void on_end(unsigned int vcpu, void* udata) {
  (void)vcpu, (void)udata;
  if (g_open && g_n < MAX_INVOKES) g_counts[g_n++] = g_insns - g_begin_at;
  g_open = false;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &g_insns, n);
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    if (pc == g_begin_addr)
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    else if (pc == g_end_addr)
      qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
  }
}

static void on_exit_qemu(qemu_plugin_id_t id, void* udata) {
  (void)id, (void)udata;
  FILE* f = fopen(g_out, "w");
  if (!f) return;
  fprintf(f, "total %" PRIu64 "\n", g_insns);
  for (size_t i = 0; i < g_n; i++) fprintf(f, "invoke %" PRIu64 "\n", g_counts[i]);
  fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                           char** argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "begin=", 6) == 0) g_begin_addr = strtoull(argv[i] + 6, NULL, 0) & ~1ull;
    else if (strncmp(argv[i], "end=", 4) == 0) g_end_addr = strtoull(argv[i] + 4, NULL, 0) & ~1ull;
    else if (strncmp(argv[i], "out=", 4) == 0) snprintf(g_out, sizeof(g_out), "%s", argv[i] + 4);
  }
  if (!g_begin_addr || !g_end_addr || !g_out[0]) {
    fprintf(stderr, "icount plugin: needs begin=ADDR,end=ADDR,out=FILE\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, on_exit_qemu, NULL);
  return 0;
}
