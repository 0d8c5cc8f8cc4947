/* Bare-metal startup for the firmware_gen harness on QEMU's Cortex-M boards (no CMSIS needed).
 *
 * Vector table, .data copy, .bss zeroing, FPU enable, C/C++ constructors, the semihosting command
 * line as argc/argv, exit with a status through semihosting, a SysTick wrap counter (with QEMU's
 * -icount the SysTick counts instructions: a cross-check of the instruction-count plugin), and a
 * fault handler that reports instead of hanging. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __StackTop;
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);
extern int main(int argc, char** argv);

void* __dso_handle = 0;
void _init(void) {}
void _fini(void) {}

enum { SYS_WRITE0 = 0x04, SYS_GET_CMDLINE = 0x15, SYS_EXIT_EXTENDED = 0x20 };
enum { ADP_STOPPED_APPLICATION_EXIT = 0x20026 };

static int semihost(int op, void* arg) {
  register int r0 __asm__("r0") = op;
  register void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

__attribute__((noreturn)) void fg_exit(int code) {
  uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
  fflush(NULL);
  semihost(SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
}

/* ---- SysTick: 24-bit down counter at the board's processor clock, wraps counted in software */
#define SYST_CSR (*(volatile uint32_t*)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018u)
#define SYST_RELOAD 0xFFFFFFu
static volatile uint32_t g_wraps;

void SysTick_Handler(void) { g_wraps++; }

void fg_systick_start(void) {
  SYST_CSR = 0;
  SYST_RVR = SYST_RELOAD;
  SYST_CVR = 0; /* any write clears it; the next tick loads SYST_RELOAD */
  g_wraps = 0;
  SYST_CSR = 7; /* processor clock, interrupt, enable */
}

uint64_t fg_systick_read(void) {
  /* Read while running (QEMU's counter reads wrong once stopped); re-read if a wrap came between. */
  uint32_t wraps, v;
  do {
    wraps = g_wraps;
    v = SYST_CVR;
  } while (wraps != g_wraps);
  SYST_CSR = 0;
  return (uint64_t)wraps * ((uint64_t)SYST_RELOAD + 1) + (v ? SYST_RELOAD - v + 1 : 0);
}

static void fault(const char* what) {
  semihost(SYS_WRITE0, (void*)what);
  fg_exit(3);
}
void HardFault_Handler(void) { fault("\nFG_FAULT hardfault\n"); }
void MemManage_Handler(void) { fault("\nFG_FAULT memmanage\n"); }
void BusFault_Handler(void) { fault("\nFG_FAULT busfault\n"); }
void UsageFault_Handler(void) { fault("\nFG_FAULT usagefault\n"); }
void Default_Handler(void) { fault("\nFG_FAULT unexpected interrupt\n"); }

#define FG_MAX_ARGS 16
static char g_cmdline[512];
static char* g_argv[FG_MAX_ARGS + 1];

static int command_line(void) {
  struct {
    char* buf;
    int len;
  } block = {g_cmdline, sizeof(g_cmdline) - 1};
  int argc = 0;
  if (semihost(SYS_GET_CMDLINE, &block) != 0) return 0;
  g_cmdline[block.len] = 0;
  for (char* p = g_cmdline; *p && argc < FG_MAX_ARGS;) {
    while (*p == ' ') *p++ = 0;
    if (!*p) break;
    g_argv[argc++] = p;
    while (*p && *p != ' ') p++;
  }
  g_argv[argc] = 0;
  return argc;
}

__attribute__((noreturn)) void Reset_Handler(void) {
  uint32_t* src = &__data_load__;
  for (uint32_t* dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t* dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
#if defined(__ARM_FP)
  *(volatile uint32_t*)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10/CP11 */
  __asm__ volatile("dsb\n\tisb");
#endif
  initialise_monitor_handles();
  __libc_init_array();
  int argc = command_line();
  fg_exit(main(argc, g_argv));
}

typedef void (*handler_t)(void);
__attribute__((section(".vectors"), used)) const handler_t g_vectors[16] = {
    (handler_t)&__StackTop, Reset_Handler,      Default_Handler,   HardFault_Handler,
    MemManage_Handler,      BusFault_Handler,   UsageFault_Handler, 0,
    0,                      0,                  0,                 Default_Handler,
    Default_Handler,        0,                  Default_Handler,   SysTick_Handler,
};
