/*
 * iso-load: the load generators and probes of the isolation suite. Copied
 * into a context's /tmp at run time (it is not part of any image), or run on
 * the host from dist/native. Every mode is bounded in time and count.
 *
 *   iso-load hog SECONDS [CPU]        spin for SECONDS of wall time (pinned to CPU if given)
 *   iso-load spin MS [EVERY_MS N]     burn MS of CPU time, N times every EVERY_MS;
 *                                     prints each job's wall time in ms
 *   iso-load forkbomb SECONDS         an exponential fork bomb: every process forks
 *                                     as fast as it can (retrying on EAGAIN) until SECONDS
 *                                     have passed, then all exit
 *   iso-load forklat N                fork+exit+wait N times; prints the mean and p50 in us
 *   iso-load alloc MB                 allocate and touch MB MiB, 1 MiB at a time; prints progress
 *   iso-load udp-echo PORT SECONDS    echo UDP datagrams on 127.0.0.1:PORT for SECONDS
 *   iso-load udp-ping PORT N GAP_MS [ADDR [SRC]]  send N pings GAP_MS apart to ADDR (default 127.0.0.1) from SRC; prints p50/p99/max round
 * trip in us
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
}

static volatile unsigned long sink;

static void burn_cpu_ms(double ms) {
  double end = now_ms(CLOCK_THREAD_CPUTIME_ID) + ms;
  while (now_ms(CLOCK_THREAD_CPUTIME_ID) < end)
    for (int i = 0; i < 2000; i++) sink += i;
}

static int hog(double seconds, int cpu) {
  if (cpu >= 0) pin(cpu);
  double end = now_ms(CLOCK_MONOTONIC) + seconds * 1e3;
  while (now_ms(CLOCK_MONOTONIC) < end)
    for (int i = 0; i < 100000; i++) sink += i;
  return 0;
}

static int spin(double ms, double every, int n) {
  double start = now_ms(CLOCK_MONOTONIC);
  for (int k = 0; k < n; k++) {
    double at = start + k * every;
    double t;
    while ((t = now_ms(CLOCK_MONOTONIC)) < at) usleep((useconds_t)((at - t) * 1000));
    double t0 = now_ms(CLOCK_MONOTONIC);
    burn_cpu_ms(ms);
    printf("%.2f\n", now_ms(CLOCK_MONOTONIC) - t0);
    fflush(stdout);
  }
  return 0;
}

static int forkbomb(double seconds) {
  double end = now_ms(CLOCK_MONOTONIC) + seconds * 1e3;
  signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
  while (now_ms(CLOCK_MONOTONIC) < end) {
    pid_t p = fork();
    if (p == 0) continue; /* the child forks on too, until the deadline */
    if (p < 0) {          /* EAGAIN at pids.max: spin and retry, as a real bomb does */
      for (int i = 0; i < 10000; i++) sink += i;
    }
  }
  return 0;
}

static int forklat(int n) {
  double *v = calloc((size_t)n, sizeof *v);
  if (!v) return 1;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    double t0 = now_ms(CLOCK_MONOTONIC);
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p < 0) {
      v[i] = 1e9;
      usleep(1000);
      continue;
    }
    waitpid(p, NULL, 0);
    v[i] = (now_ms(CLOCK_MONOTONIC) - t0) * 1e3;
    sum += v[i];
  }
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  printf("mean_us=%.1f p50_us=%.1f p99_us=%.1f\n", sum / n, v[n / 2], v[(n * 99) / 100]);
  return 0;
}

static int alloc(long mb) {
  for (long i = 1; i <= mb; i++) {
    char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      printf("mmap failed at %ld MiB: %s\n", i, strerror(errno));
      return 1;
    }
    memset(p, (int)i, 1 << 20);
    printf("%ld\n", i);
    fflush(stdout);
  }
  printf("done %ld MiB\n", mb);
  return 0;
}

static int udp_socket(int port, int bind_it) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) {
    perror("socket");
    exit(1);
  }
  if (bind_it) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
      perror("bind");
      exit(1);
    }
  }
  return s;
}

static int udp_echo(int port, double seconds) {
  int s = udp_socket(port, 1);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  printf("listening\n");
  fflush(stdout);
  double end = now_ms(CLOCK_MONOTONIC) + seconds * 1e3;
  char buf[512];
  while (now_ms(CLOCK_MONOTONIC) < end) {
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n > 0) sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
  }
  return 0;
}

static int udp_ping(int port, int n, double gap, const char *addr, const char *src) {
  int s = udp_socket(port, 0);
  if (src) {
    /* A host client of a shared context sends from the pool's host address: a reply to 127.0.0.1 would stay inside the context. */
    struct sockaddr_in me = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, src, &me.sin_addr) != 1 || bind(s, (struct sockaddr *)&me, sizeof me) != 0) {
      fprintf(stderr, "cannot bind the source %s: %s\n", src, strerror(errno));
      return 2;
    }
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (addr && inet_pton(AF_INET, addr, &to.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", addr);
    return 2;
  }
  struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  double *v = calloc((size_t)n, sizeof *v);
  int got = 0, lost = 0;
  for (int i = 0; i < n; i++) {
    char msg[32], buf[64];
    int len = snprintf(msg, sizeof msg, "%d", i);
    double t0 = now_ms(CLOCK_MONOTONIC);
    sendto(s, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof to);
    for (;;) {
      ssize_t r = recv(s, buf, sizeof buf - 1, 0);
      if (r < 0) {
        lost++;
        break;
      }
      buf[r] = 0;
      if (atoi(buf) == i) {
        v[got++] = (now_ms(CLOCK_MONOTONIC) - t0) * 1e3;
        break;
      }
    }
    usleep((useconds_t)(gap * 1000));
  }
  if (got == 0) {
    printf("got=0 lost=%d\n", lost);
    return 1;
  }
  qsort(v, (size_t)got, sizeof *v, cmp_double);
  int below = 0;
  for (int i = 0; i < got; i++) below += v[i] < 1000;
  printf("got=%d lost=%d p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f under_1ms=%.3f\n", got, lost, v[got / 2], v[(got * 9) / 10],
         v[(got * 99) / 100], v[got - 1], (double)below / got);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && !strcmp(argv[1], "hog")) return hog(atof(argv[2]), argc >= 4 ? atoi(argv[3]) : -1);
  if (argc >= 3 && !strcmp(argv[1], "spin")) return spin(atof(argv[2]), argc >= 4 ? atof(argv[3]) : 0, argc >= 5 ? atoi(argv[4]) : 1);
  if (argc == 3 && !strcmp(argv[1], "forkbomb")) return forkbomb(atof(argv[2]));
  if (argc == 3 && !strcmp(argv[1], "forklat")) return forklat(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
  if (argc == 3 && !strcmp(argv[1], "alloc")) return alloc(atol(argv[2]));
  if (argc == 4 && !strcmp(argv[1], "udp-echo")) return udp_echo(atoi(argv[2]), atof(argv[3]));
  if (argc >= 5 && argc <= 7 && !strcmp(argv[1], "udp-ping"))
    return udp_ping(atoi(argv[2]), atoi(argv[3]) > 0 ? atoi(argv[3]) : 1, atof(argv[4]), argc >= 6 ? argv[5] : NULL,
                    argc == 7 ? argv[6] : NULL);
  fprintf(stderr, "usage: iso-load hog|spin|forkbomb|forklat|alloc|udp-echo|udp-ping ...\n");
  return 2;
}
