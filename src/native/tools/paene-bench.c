/*
 * paene-bench: the timing program of `paene bench overhead`.
 *
 * The same static binary runs on the host and inside a context, so both sides
 * execute identical code. Every timed subcommand prints one line
 *     NAME VALUE UNIT
 * where VALUE is the mean over the iterations of one run (the caller repeats
 * runs and takes medians).
 *
 *   paene-bench fork-exit N          fork(); child _exit(0); parent waitpid   -> us/op
 *   paene-bench fork-exec N          fork(); child execs this binary `nop`    -> us/op
 *   paene-bench sh-true N            fork(); child execs /bin/sh -c true      -> us/op
 *   paene-bench pipe-ctx N           2 processes pinned to one CPU pass one
 *                                    byte over two pipes; one round trip is
 *                                    two context switches                     -> us/switch
 *   paene-bench reread FILE MIB N    creates FILE (MIB MiB), reads it once to
 *                                    warm the page cache, then re-reads it
 *                                    N times with 1 MiB read()s               -> ms/read
 *   paene-bench mmap FILE MIB N      creates FILE, then N times: mmap it,
 *                                    touch one byte per page, munmap          -> ms/map
 *   paene-bench http HOST PORT N     N sequential HTTP/1.0 GET / requests
 *                                    (one connection each), bounded by a 2 s
 *                                    timeout per request                      -> req/s
 *   paene-bench tcp-serve ADDR PORT[-LAST] SECS  a sequential TCP server
 *                                    for the three below, on one port or on
 *                                    each of PORT..LAST (at most 1024): a
 *                                    connection whose first byte is 'R' gets
 *                                    one byte back, one whose first byte is
 *                                    'P' every byte it sends echoed; every
 *                                    one is read to EOF (a sink; the client
 *                                    closes first)
 *   paene-bench tcp-crr HOST PORT N  N connect + 1-byte request + 1-byte
 *                                    answer + close (netperf's TCP_CRR)      -> conn/s
 *                                    (http and tcp-crr also print NAME-retries,
 *                                    the requests tried again, NAME-slowest,
 *                                    the slowest one in ms, and NAME-stalls,
 *                                    how many took over 200 ms)
 *   paene-bench tcp-rr HOST PORT N   one connection, N 1-byte requests each
 *                                    answered by 1 byte (netperf's TCP_RR)   -> trans/s
 *                                    (also prints tcp-rr-p50 and tcp-rr-p99,
 *                                    a request's round trip in us)
 *   paene-bench tcp-stream HOST PORT MIB  one connection, MIB MiB written
 *                                    in 64 KiB writes to the sink            -> MiB/s
 *   paene-bench nop                  exits at once (the target of fork-exec)
 *   paene-bench dropcache FILE...    fdatasync + POSIX_FADV_DONTNEED each file,
 *                                    so its pages leave the page cache
 *
 *   paene-bench --cpu N CMD ...      the same, bound to CPU N first (the
 *                                    network benchmark puts its clients and
 *                                    servers on one CPU: where the scheduler
 *                                    would place them moves a rate by 20%)
 *   paene-bench --cpu N exec PROGRAM ARG...  PROGRAM (a path) bound to CPU N,
 *                                    as taskset would, in a guest without it
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char self[4096];

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
  fprintf(stderr, "paene-bench: %s: %s\n", what, strerror(errno));
  exit(1);
}

static long arg_long(const char *s, const char *what) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v <= 0) {
    fprintf(stderr, "paene-bench: %s must be a positive number, got '%s'\n", what, s);
    exit(2);
  }
  return v;
}

static void wait_child(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "paene-bench: child failed (status %d)\n", st);
    exit(1);
  }
}

static void fork_loop(long n, int mode) {
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      if (mode == 0) _exit(0);
      if (mode == 1) {
        char *argv[] = {self, "nop", NULL};
        char *envp[] = {NULL};
        execve(self, argv, envp);
      } else {
        char *argv[] = {"/bin/sh", "-c", "true", NULL};
        char *envp[] = {"PATH=/usr/bin:/bin", NULL};
        execve("/bin/sh", argv, envp);
      }
      _exit(127);
    }
    wait_child(pid);
  }
  double t = now_us() - t0;
  const char *name = mode == 0 ? "fork-exit" : mode == 1 ? "fork-exec" : "sh-true";
  printf("%s %.3f us\n", name, t / n);
}

static void pin_cpu0(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  /* the first CPU this process may use */
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) < 0) die("sched_getaffinity");
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, &allowed)) {
      CPU_SET(c, &set);
      break;
    }
  }
  if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
}

static void pipe_ctx(long n) {
  int ab[2], ba[2];
  if (pipe(ab) < 0 || pipe(ba) < 0) die("pipe");
  pin_cpu0();
  pid_t pid = fork();
  if (pid < 0) die("fork");
  char c = 'x';
  if (pid == 0) {
    for (long i = 0; i < n; i++) {
      if (read(ab[0], &c, 1) != 1) _exit(1);
      if (write(ba[1], &c, 1) != 1) _exit(1);
    }
    _exit(0);
  }
  /* one warm-up round trip */
  double t0 = 0;
  for (long i = 0; i < n; i++) {
    if (i == 1) t0 = now_us();
    if (write(ab[1], &c, 1) != 1) die("write");
    if (read(ba[0], &c, 1) != 1) die("read");
  }
  double t = now_us() - t0;
  wait_child(pid);
  printf("pipe-ctx %.3f us\n", n > 1 ? t / ((n - 1) * 2.0) : 0.0);
}

static void make_file(const char *path, long mib) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) die(path);
  static char buf[1 << 20];
  memset(buf, 'p', sizeof buf);
  for (long i = 0; i < mib; i++) {
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) die("write");
  }
  close(fd);
}

static long read_all(const char *path) {
  static char buf[1 << 20];
  int fd = open(path, O_RDONLY);
  if (fd < 0) die(path);
  long total = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) die("read");
    if (r == 0) break;
    total += r;
  }
  close(fd);
  return total;
}

static void reread(const char *path, long mib, long n) {
  make_file(path, mib);
  read_all(path);
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    if (read_all(path) != mib << 20) {
      fprintf(stderr, "paene-bench: short read of %s\n", path);
      exit(1);
    }
  }
  double t = now_us() - t0;
  unlink(path);
  printf("reread %.3f ms\n", t / n / 1000.0);
}

static void mmap_touch(const char *path, long mib, long n) {
  make_file(path, mib);
  read_all(path);
  size_t len = (size_t)mib << 20;
  long page = sysconf(_SC_PAGESIZE);
  volatile char sink = 0;
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die(path);
    char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    for (size_t off = 0; off < len; off += page) sink += p[off];
    munmap(p, len);
    close(fd);
  }
  double t = now_us() - t0;
  (void)sink;
  unlink(path);
  printf("mmap %.3f ms\n", t / n / 1000.0);
}

/* A request that fails is tried again, up to this many times in all, and counted (NAME-retries): the time
   it lost stays in the rate. */
#define MAX_TRIES 3

/* The slowest operation of a run and how many took over 200 ms (a lost SYN
 * costs a 1 s retransmission: one of them moves a rate a lot). */
struct slowest {
  double max_us;
  long stalls;
};

static void note_slowest(struct slowest *sl, double us) {
  if (us > sl->max_us) sl->max_us = us;
  if (us > 200000) sl->stalls++;
}

static void print_slowest(const char *name, const struct slowest *sl) {
  printf("%s-slowest %.3f ms\n%s-stalls %ld over-200ms\n", name, sl->max_us / 1000.0, name, sl->stalls);
}

static int tcp_connect(const char *host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  /* 10 s: a SYN dropped by the server's TIME_WAIT check (PAWS, seen behind NAT) is sent again after 1 s,
     then 2 s more, then 4 s more; the wait is counted (a stall), not a failure. */
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int http_get(const char *host, int port) {
  int fd = tcp_connect(host, port);
  if (fd < 0) return -1;
  static const char req[] = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";
  if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
    close(fd);
    return -1;
  }
  char buf[4096];
  int ok = 0;
  ssize_t r;
  long got = 0;
  while ((r = read(fd, buf, sizeof buf)) > 0) {
    if (got == 0 && r >= 12 && memcmp(buf, "HTTP/1.", 7) == 0 && memcmp(buf + 9, "200", 3) == 0) ok = 1;
    got += r;
  }
  close(fd);
  return ok ? 0 : -1;
}

static void http(const char *host, const char *port, long n) {
  int p = (int)arg_long(port, "PORT");
  if (http_get(host, p) < 0) {
    fprintf(stderr, "paene-bench: no HTTP 200 from %s:%d\n", host, p);
    exit(1);
  }
  struct slowest sl = {0, 0};
  long retries = 0;
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    double t1 = now_us();
    int tries = 0;
    while (http_get(host, p) < 0)
      if (++tries == MAX_TRIES) {
        fprintf(stderr, "paene-bench: request %ld to %s:%d failed %d times\n", i, host, p, tries);
        exit(1);
      }
    retries += tries;
    note_slowest(&sl, now_us() - t1);
  }
  double t = now_us() - t0;
  printf("http %.3f req/s\n", n / (t / 1e6));
  print_slowest("http", &sl);
  printf("http-retries %ld\n", retries);
}

/* tcp-rr's server side: every byte read is answered by one (the client sends one and waits), until EOF. A
   round trip may wait behind a loaded machine's scheduler: 10 s before the connection is given up. */
static ssize_t ping_pong(int c, char *buf, size_t size, ssize_t r) {
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {10, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  /* the answer is the request's own bytes back (the client counts them, not what they are) */
  while (r > 0 && write(c, buf, (size_t)r) == r) r = read(c, buf, size);
  return r;
}

/* One listener; its accept() never blocks (poll says when). */
static int tcp_listener(const char *addr, int port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) die("bad address");
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 64) < 0) die("bind/listen");
  return s;
}

/* Each port of a range is a fresh 4-tuple space for a client: a run of thousands of connections to a port that
   earlier runs used finds most of the client's ports still in TIME_WAIT for that destination (60 s), and its
   connect() and the NAT's port choice search ever longer (measured here: 12,000 conn/s fell to 300 after about
   40,000 connections to one port). */
static void tcp_serve(const char *addr, const char *ports, double secs) {
  char *end;
  long first = strtol(ports, &end, 10), last = first;
  if (*end == '-') last = strtol(end + 1, &end, 10);
  if (*end != '\0' || first < 1 || last > 65535 || last < first || last - first >= 1024) {
    fprintf(stderr, "paene-bench: PORT must be a port or FIRST-LAST (at most 1024 ports), got '%s'\n", ports);
    exit(2);
  }
  int n = (int)(last - first + 1);
  struct pollfd *pf = calloc((size_t)n, sizeof *pf);
  if (!pf) die("calloc");
  for (int i = 0; i < n; i++) pf[i] = (struct pollfd){.fd = tcp_listener(addr, (int)first + i), .events = POLLIN};
  printf("listening\n");
  static char buf[65536];
  struct timeval tv = {0, 200000};
  for (double stop = now_us() + secs * 1e6; now_us() < stop;) {
    if (poll(pf, (nfds_t)n, 200) <= 0) continue;
    for (int i = 0; i < n; i++) {
      if (!(pf[i].revents & POLLIN)) continue;
      int c = accept(pf[i].fd, NULL, NULL);
      if (c < 0) continue;
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ssize_t r = read(c, buf, sizeof buf);
      if (r > 0 && buf[0] == 'R' && write(c, "A", 1) == 1) r = read(c, buf, sizeof buf);
      if (r > 0 && buf[0] == 'P') r = ping_pong(c, buf, sizeof buf, r);
      /* The client closes first (then waits at most the 200 ms each read is given): the TIME_WAIT stays on the
         client's side, which picks its next port around it. With the server closing first, a new SYN on a
         4-tuple still in the server's TIME_WAIT was dropped now and then (PAWS, most often behind NAT) and cost a
         1 s retransmission: stalls of the kernel's, not of the path measured. */
      while (r > 0) r = read(c, buf, sizeof buf);
      close(c);
    }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* netperf's TCP_RR: the request/answer time of an open connection (no handshake, no close), the latency an
   application with a kept-alive connection sees. */
static void tcp_rr(const char *host, const char *port, long n) {
  int p = (int)arg_long(port, "PORT");
  int fd = tcp_connect(host, p);
  if (fd < 0) {
    fprintf(stderr, "paene-bench: cannot connect to %s:%d: %s\n", host, p, strerror(errno));
    exit(1);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double *lat = malloc((size_t)n * sizeof *lat);
  if (!lat) die("malloc");
  char b;
  if (write(fd, "P", 1) != 1 || read(fd, &b, 1) != 1) {
    fprintf(stderr, "paene-bench: no answer from %s:%d\n", host, p);
    exit(1);
  }
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    double t1 = now_us();
    if (write(fd, "x", 1) != 1 || read(fd, &b, 1) != 1) {
      fprintf(stderr, "paene-bench: request %ld to %s:%d: %s\n", i, host, p, strerror(errno));
      exit(1);
    }
    lat[i] = now_us() - t1;
  }
  double t = now_us() - t0;
  shutdown(fd, SHUT_WR);
  while (read(fd, &b, 1) > 0) {}
  close(fd);
  qsort(lat, (size_t)n, sizeof *lat, cmp_double);
  printf("tcp-rr %.3f trans/s\n", n / (t / 1e6));
  printf("tcp-rr-p50 %.3f us\ntcp-rr-p99 %.3f us\n", lat[n / 2], lat[(n * 99) / 100]);
  free(lat);
}

static void tcp_crr(const char *host, const char *port, long n) {
  int p = (int)arg_long(port, "PORT");
  struct slowest sl = {0, 0};
  long retries = 0;
  double t0 = now_us();
  for (long i = 0; i < n; i++) {
    double t1 = now_us();
    for (int tries = 1;; tries++) {
      int fd = tcp_connect(host, p);
      char b;
      int ok = fd >= 0 && write(fd, "R", 1) == 1 && read(fd, &b, 1) == 1;
      int err = errno;
      if (fd >= 0) close(fd);
      if (ok) break;
      if (tries == MAX_TRIES) {
        fprintf(stderr, "paene-bench: request %ld to %s:%d failed %d times: %s\n", i, host, p, tries, strerror(err));
        exit(1);
      }
      retries++;
    }
    note_slowest(&sl, now_us() - t1);
  }
  printf("tcp-crr %.3f conn/s\n", n / ((now_us() - t0) / 1e6));
  print_slowest("tcp-crr", &sl);
  printf("tcp-crr-retries %ld\n", retries);
}

static void tcp_stream(const char *host, const char *port, long mib) {
  int fd = tcp_connect(host, (int)arg_long(port, "PORT"));
  if (fd < 0) {
    fprintf(stderr, "paene-bench: cannot connect to %s:%s\n", host, port);
    exit(1);
  }
  static char buf[65536];
  memset(buf, 'x', sizeof buf);
  double t0 = now_us();
  for (long left = mib * 16; left > 0; left--) {
    size_t off = 0;
    while (off < sizeof buf) {
      ssize_t w = write(fd, buf + off, sizeof buf - off);
      if (w <= 0) die("write");
      off += (size_t)w;
    }
  }
  shutdown(fd, SHUT_WR);
  char b;
  while (read(fd, &b, 1) > 0) {}
  close(fd);
  printf("tcp-stream %.3f MiB/s\n", mib / ((now_us() - t0) / 1e6));
}

static void dropcache(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    int fd = open(argv[i], O_RDONLY | O_NOFOLLOW);
    if (fd < 0) continue; /* symlinks, sockets: nothing cached */
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

int main(int argc, char **argv) {
  ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
  if (l < 0) die("readlink /proc/self/exe");
  self[l] = '\0';
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 3 && strcmp(argv[1], "--cpu") == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    char *end;
    long cpu = strtol(argv[2], &end, 10);
    /* a whole number only: '' or 'none' would read as CPU 0 */
    if (end == argv[2] || *end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) goto usage;
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
    argc -= 2;
    argv += 2;
  }
  if (argc < 2) goto usage;
  const char *cmd = argv[1];
  if (strcmp(cmd, "nop") == 0) return 0;
  if (strcmp(cmd, "exec") == 0 && argc >= 3) {
    execv(argv[2], argv + 2);
    fprintf(stderr, "paene-bench: cannot execute %s: %s\n", argv[2], strerror(errno));
    return 127;
  }
  if (strcmp(cmd, "fork-exit") == 0 && argc == 3)
    fork_loop(arg_long(argv[2], "N"), 0);
  else if (strcmp(cmd, "fork-exec") == 0 && argc == 3)
    fork_loop(arg_long(argv[2], "N"), 1);
  else if (strcmp(cmd, "sh-true") == 0 && argc == 3)
    fork_loop(arg_long(argv[2], "N"), 2);
  else if (strcmp(cmd, "pipe-ctx") == 0 && argc == 3)
    pipe_ctx(arg_long(argv[2], "N"));
  else if (strcmp(cmd, "reread") == 0 && argc == 5)
    reread(argv[2], arg_long(argv[3], "MIB"), arg_long(argv[4], "N"));
  else if (strcmp(cmd, "mmap") == 0 && argc == 5)
    mmap_touch(argv[2], arg_long(argv[3], "MIB"), arg_long(argv[4], "N"));
  else if (strcmp(cmd, "http") == 0 && argc == 5)
    http(argv[2], argv[3], arg_long(argv[4], "N"));
  else if (strcmp(cmd, "tcp-serve") == 0 && argc == 5)
    tcp_serve(argv[2], argv[3], atof(argv[4]));
  else if (strcmp(cmd, "tcp-crr") == 0 && argc == 5)
    tcp_crr(argv[2], argv[3], arg_long(argv[4], "N"));
  else if (strcmp(cmd, "tcp-rr") == 0 && argc == 5)
    tcp_rr(argv[2], argv[3], arg_long(argv[4], "N"));
  else if (strcmp(cmd, "tcp-stream") == 0 && argc == 5)
    tcp_stream(argv[2], argv[3], arg_long(argv[4], "MIB"));
  else if (strcmp(cmd, "dropcache") == 0)
    dropcache(argc - 2, argv + 2);
  else
    goto usage;
  return 0;
usage:
  fprintf(stderr, "usage: paene-bench fork-exit|fork-exec|sh-true|pipe-ctx N\n"
                  "       paene-bench reread|mmap FILE MIB N\n"
                  "       paene-bench http|tcp-crr|tcp-rr HOST PORT N | tcp-stream HOST PORT MIB | tcp-serve ADDR PORT[-LAST] SECS\n"
                  "       paene-bench nop | dropcache FILE...\n"
                  "       paene-bench --cpu N COMMAND ... | --cpu N exec PROGRAM ARG...\n");
  return 2;
}
