/*
 * net-probe: the network attempts of the escape suite and the network tests,
 * run inside a context (static, so it needs nothing of the guest's image).
 * Each command prints one line, "ok ..." or "err ERRNO_NAME (what)", and
 * exits 0 either way: the judge reads the line, and a witness outside the
 * context (a host listener) says whether anything got through.
 *
 *   net-probe connect ADDR PORT [MSG]      TCP connect, send MSG, print the answer and the local address
 *   net-probe bind ADDR PORT               TCP bind + listen for 1 s, print the bound address
 *   net-probe serve ADDR PORT SECS         TCP server: answers every connection with "hello from ADDR peer=PEER"
 *   net-probe udp-echo ADDR PORT SECS      UDP echo server
 *   net-probe udp ADDR PORT MSG            UDP send, print the answer and who sent it
 *   net-probe udp-spoof SRC ADDR PORT MSG  UDP send with IP_PKTINFO asking for source SRC
 *   net-probe udp-connect ADDR PORT MSG    UDP connect (no bind), send, print the answer and the local address
 *   net-probe abstract NAME                connect to the abstract unix socket "\0NAME"
 *   net-probe raw | packet | sockdiag      open a raw IP, packet or sock_diag netlink socket
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef NETLINK_SOCK_DIAG
#define NETLINK_SOCK_DIAG 4
#endif

static int err(const char *what) {
  printf("err %s (%s)\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?", what);
  return 0;
}

/* IPv4 or IPv6 text into a sockaddr; IPv4 stays AF_INET. */
static socklen_t addr_of(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    return sizeof *a4;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    return sizeof *a6;
  }
  fprintf(stderr, "bad address %s\n", host);
  exit(2);
}

static const char *text_of(const struct sockaddr_storage *ss, char *buf, size_t n) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  }
  snprintf(buf, n, "%s:%d", ip, port);
  return buf;
}

static int wait_readable(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) == 1;
}

static int cmd_connect(const char *host, int port, const char *msg) {
  struct sockaddr_storage ss, me;
  socklen_t len = addr_of(host, port, &ss), ml = sizeof me;
  int s = socket(ss.ss_family, SOCK_STREAM, 0);
  if (s < 0) return err("socket");
  if (connect(s, (struct sockaddr *)&ss, len) != 0) return err("connect");
  char local[80], buf[256] = "";
  getsockname(s, (struct sockaddr *)&me, &ml);
  if (msg && write(s, msg, strlen(msg)) < 0) return err("write");
  if (wait_readable(s, 2000)) {
    ssize_t n = read(s, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
  }
  printf("ok local=%s answer=%s\n", text_of(&me, local, sizeof local), buf);
  return 0;
}

static int listener(const char *host, int port, int type) {
  struct sockaddr_storage ss;
  socklen_t len = addr_of(host, port, &ss);
  int s = socket(ss.ss_family, type, 0);
  if (s < 0) return -1;
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&ss, len) != 0) return -1;
  if (type == SOCK_STREAM && listen(s, 16) != 0) return -1;
  return s;
}

static int cmd_bind(const char *host, int port) {
  int s = listener(host, port, SOCK_STREAM);
  if (s < 0) return err("bind");
  struct sockaddr_storage me;
  socklen_t ml = sizeof me;
  char local[80];
  getsockname(s, (struct sockaddr *)&me, &ml);
  printf("ok bound=%s\n", text_of(&me, local, sizeof local));
  fflush(stdout);
  sleep(1);
  return 0;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmd_serve(const char *host, int port, double secs) {
  int s = listener(host, port, SOCK_STREAM);
  if (s < 0) return err("bind");
  printf("listening\n");
  fflush(stdout);
  for (double end = now() + secs; now() < end;) {
    if (!wait_readable(s, 100)) continue;
    struct sockaddr_storage peer;
    socklen_t pl = sizeof peer;
    int c = accept(s, (struct sockaddr *)&peer, &pl);
    if (c < 0) continue;
    char p[80], line[160];
    int n = snprintf(line, sizeof line, "hello from %s peer=%s\n", host, text_of(&peer, p, sizeof p));
    if (write(c, line, (size_t)n) < 0) { /* the client left */
    }
    close(c);
  }
  return 0;
}

static int cmd_udp_echo(const char *host, int port, double secs) {
  int s = listener(host, port, SOCK_DGRAM);
  if (s < 0) return err("bind");
  printf("listening\n");
  fflush(stdout);
  for (double end = now() + secs; now() < end;) {
    if (!wait_readable(s, 100)) continue;
    char buf[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (n > 0) sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
  }
  return 0;
}

static int cmd_udp(const char *src, const char *host, int port, const char *msg) {
  struct sockaddr_storage ss;
  socklen_t len = addr_of(host, port, &ss);
  int s = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (s < 0) return err("socket");
  struct msghdr mh = {0};
  struct iovec iov = {.iov_base = (void *)msg, .iov_len = strlen(msg)};
  char cbuf[CMSG_SPACE(sizeof(struct in_pktinfo))] = {0};
  mh.msg_name = &ss;
  mh.msg_namelen = len;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (src) {
    /* Ask the kernel for another source address, as a spoofer would. */
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
    inet_pton(AF_INET, src, &pi->ipi_spec_dst);
  }
  if (sendmsg(s, &mh, 0) < 0) return err("sendmsg");
  if (!wait_readable(s, 2000)) return printf("ok sent, no answer\n"), 0;
  char buf[256], from_t[80];
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
  buf[n > 0 ? n : 0] = 0;
  printf("ok answer=%s from=%s\n", buf, text_of(&from, from_t, sizeof from_t));
  return 0;
}

static int cmd_udp_connect(const char *host, int port, const char *msg) {
  struct sockaddr_storage ss, me;
  socklen_t len = addr_of(host, port, &ss), ml = sizeof me;
  int s = socket(ss.ss_family, SOCK_DGRAM, 0);
  if (s < 0) return err("socket");
  if (connect(s, (struct sockaddr *)&ss, len) != 0) return err("connect");
  if (send(s, msg, strlen(msg), 0) < 0) return err("send");
  char local[80], buf[256] = "";
  getsockname(s, (struct sockaddr *)&me, &ml);
  if (wait_readable(s, 2000)) {
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
  }
  printf("ok local=%s answer=%s\n", text_of(&me, local, sizeof local), buf);
  return 0;
}

static int cmd_abstract(const char *name) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  if (s < 0) return err("socket");
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  size_t n = strlen(name);
  if (n + 1 > sizeof a.sun_path) n = sizeof a.sun_path - 1;
  memcpy(a.sun_path + 1, name, n);
  /* The whole sun_path, zero-padded: the length libuv (Node) binds abstract names with. */
  if (connect(s, (struct sockaddr *)&a, (socklen_t)sizeof a) != 0) return err("connect");
  printf("ok connected\n");
  return 0;
}

static int cmd_socket(int family, int type, int proto, const char *what) {
  int s = socket(family, type, proto);
  if (s < 0) return err(what);
  printf("ok %s socket open\n", what);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *c = argc > 1 ? argv[1] : "";
  if (!strcmp(c, "connect") && argc >= 4) return cmd_connect(argv[2], atoi(argv[3]), argc > 4 ? argv[4] : NULL);
  if (!strcmp(c, "bind") && argc == 4) return cmd_bind(argv[2], atoi(argv[3]));
  if (!strcmp(c, "serve") && argc == 5) return cmd_serve(argv[2], atoi(argv[3]), atof(argv[4]));
  if (!strcmp(c, "udp-echo") && argc == 5) return cmd_udp_echo(argv[2], atoi(argv[3]), atof(argv[4]));
  if (!strcmp(c, "udp") && argc == 5) return cmd_udp(NULL, argv[2], atoi(argv[3]), argv[4]);
  if (!strcmp(c, "udp-spoof") && argc == 6) return cmd_udp(argv[2], argv[3], atoi(argv[4]), argv[5]);
  if (!strcmp(c, "udp-connect") && argc == 5) return cmd_udp_connect(argv[2], atoi(argv[3]), argv[4]);
  if (!strcmp(c, "abstract") && argc == 3) return cmd_abstract(argv[2]);
  if (!strcmp(c, "raw")) return cmd_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP, "raw");
  if (!strcmp(c, "packet")) return cmd_socket(AF_PACKET, SOCK_RAW, 0, "packet");
  if (!strcmp(c, "sockdiag")) return cmd_socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG, "sock_diag");
  fprintf(stderr, "usage: net-probe connect|bind|serve|udp-echo|udp|udp-spoof|udp-connect|abstract|raw|packet|sockdiag ...\n");
  return 2;
}
