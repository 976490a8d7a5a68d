/*
 * A stand-in for a client's subreaper (a containerd shim, Podman's conmon),
 * for test/oci/paene-runc.test.ts: the test compiles it under each name it
 * needs, since a process's name is what the planner goes by.
 *
 * subreaper-probe CMD ARG...: becomes a child subreaper, runs CMD, and then
 * reaps what re-parents to it, printing "reaped PID" for each, until its
 * standard input closes; then it exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2 || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return 2;
  pid_t cmd = fork();
  if (cmd < 0) return 2;
  if (cmd == 0) {
    execvp(argv[1], argv + 1);
    _exit(127);
  }
  setvbuf(stdout, NULL, _IONBF, 0);
  for (;;) {
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0) printf(w == cmd ? "done %d\n" : "reaped %d\n", (int)w);
    struct pollfd in = {.fd = 0, .events = POLLIN};
    if (poll(&in, 1, 50) > 0) {
      char b[64];
      if (read(0, b, sizeof b) <= 0) return 0;
    }
  }
}
