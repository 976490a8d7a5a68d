/*
 * paene-init: a context's pid 1, as small as a process can be.
 *
 * The helper sets the context up, drops its privileges and then executes
 * this program in place of itself: a forked copy of the helper would keep
 * the monitor's pages and page tables alive in every one of thousands of
 * contexts. This one has no libc, no heap and no data: a few pages.
 *
 * It reaps every orphan of the context; on SIGTERM, SIGINT or SIGPWR it
 * passes SIGTERM (and SIGCONT) to every process of the context and exits
 * once they are gone. Signals stay blocked and are taken with
 * rt_sigtimedwait: a blocked signal is queued even for a namespace's init,
 * and no handler (or signal-return trampoline) is needed.
 */
#include <asm/unistd.h>
#include <linux/signal.h>
#include <linux/wait.h>

#if defined(__x86_64__)
static long sys4(long n, long a, long b, long c, long d) {
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
static long sys4(long n, long a, long b, long c, long d) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
}
#else
#error "paene-init: add this architecture's system call instruction"
#endif

#define ECHILD 10
#define EINTR 4

static unsigned long bit(int sig) { return 1UL << (sig - 1); }

static __attribute__((noreturn)) void leave(int code) {
  for (;;) sys4(__NR_exit_group, code, 0, 0, 0);
}

/* Reaps what has exited; with `block`, waits until no child is left. Returns 1 when none is left. */
static int reap(int block) {
  for (;;) {
    long r = sys4(__NR_wait4, -1, 0, block ? 0 : WNOHANG, 0);
    if (r == -ECHILD) return 1;
    if (r == -EINTR || r > 0) continue;
    return 0; /* 0: children left, none exited */
  }
}

/* sp: the stack the kernel handed over: argc, then argv. */
void __attribute__((noreturn, used)) init_main(long *sp) {
  /* Executed through a file descriptor, its name would be "3": take argv[0] (e.g. "paene-init"). */
  if (sp[0] > 0) sys4(__NR_prctl, 15 /* PR_SET_NAME */, sp[1], 0, 0);
  unsigned long set = bit(SIGCHLD) | bit(SIGTERM) | bit(SIGINT) | bit(SIGPWR) | bit(SIGHUP);
  sys4(__NR_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, sizeof set);
  for (;;) {
    long sig = sys4(__NR_rt_sigtimedwait, (long)&set, 0, 0, sizeof set);
    if (sig == SIGCHLD) {
      reap(0);
    } else if (sig == SIGTERM || sig == SIGINT || sig == SIGPWR) {
      sys4(__NR_kill, -1, SIGTERM, 0, 0);
      sys4(__NR_kill, -1, SIGCONT, 0, 0);
      reap(1);
      leave(0);
    }
    /* SIGHUP and interruptions: nothing to do */
  }
}

/* The entry point: hand init_main the kernel's stack pointer, align the stack as the ABI wants, call it. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\txor %rbp,%rbp\n\tmov %rsp,%rdi\n\tand $-16,%rsp\n\tcall init_main\n\thlt\n");
#elif defined(__aarch64__)
__asm__(".globl _start\n_start:\n\tmov x29, #0\n\tmov x30, #0\n\tmov x0, sp\n\tand x0, x0, #-16\n\tmov sp, x0\n\tbl init_main\n");
#endif
