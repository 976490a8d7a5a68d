/*
 * The native side of src/proto/tokens.ts: a message of NUL-terminated tokens,
 * each entry a key and its fixed number of values, closed by "end N".  The
 * keys and their arities come from the message's description in TypeScript,
 * through the header the build generates (dist/gen/NAME.h), so this file
 * knows no message of its own.  The including file defines die().
 */
#ifndef PAENE_PROTO_H
#define PAENE_PROTO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct proto_key {
  const char *name;
  int nvalues;
};

void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Splits buf[len] (NUL-terminated tokens) into *nt tokens, the end marker checked and dropped. */
__attribute__((unused)) static char **proto_tokens(char *buf, size_t len, int *nt, const char *what) {
  int cap = 1;
  for (size_t j = 0; j < len; j++)
    if (!buf[j]) cap++;
  char **toks = calloc((size_t)cap, sizeof *toks);
  if (!toks) die("out of memory");
  int n = 0;
  for (char *q = buf; q < buf + len;) {
    toks[n++] = q;
    q += strlen(q) + 1;
  }
  if (len > 0 && buf[len - 1] != 0) die("%s: the last token is not terminated", what);
  char *end;
  if (n < 2 || strcmp(toks[n - 2], "end") != 0) die("%s: incomplete (no end marker)", what);
  long count = strtol(toks[n - 1], &end, 10);
  if (*end || count != n - 2) die("%s: incomplete (%d tokens, the end marker says %s)", what, n - 2, toks[n - 1]);
  *nt = n - 2;
  return toks;
}

/* The entry at toks[*i]: returns its key's index and points *vals at its values; moves *i past it. */
__attribute__((unused)) static int proto_next(char **toks, int nt, int *i, const struct proto_key *keys, int nkeys, char ***vals,
                                              const char *what) {
  const char *k = toks[*i];
  for (int j = 0; j < nkeys; j++) {
    if (strcmp(keys[j].name, k) != 0) continue;
    if (*i + keys[j].nvalues >= nt) die("%s: key %s needs %d values", what, k, keys[j].nvalues);
    *vals = toks + *i + 1;
    *i += 1 + keys[j].nvalues;
    return j;
  }
  die("%s: unknown key '%s'", what, k);
}

/*
 * A flag message (a command line): the flag at argv[*i], its key's index,
 * *vals its values (NULL when it takes none); moves *i past it.  -1 (and *i
 * unchanged) for a flag the message does not have: the caller says so its way.
 */
__attribute__((unused)) static int proto_flag(char **argv, int argc, int *i, const struct proto_key *keys, int nkeys, char ***vals,
                                              const char *what) {
  const char *a = argv[*i];
  for (int j = 0; j < nkeys; j++) {
    if (strcmp(keys[j].name, a) != 0) continue;
    *vals = NULL;
    if (keys[j].nvalues > 0) {
      if (*i + keys[j].nvalues >= argc) die("%s: flag %s needs %d value(s)", what, a, keys[j].nvalues);
      *vals = argv + *i + 1;
    }
    *i += 1 + keys[j].nvalues;
    return j;
  }
  return -1;
}

/* Echo: the entries a program parsed, written back as a message (for the round-trip tests). */
struct proto_out {
  FILE *f;
  long count;
};
static void proto_put(struct proto_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
__attribute__((unused)) static void proto_put(struct proto_out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(o->f, fmt, ap);
  va_end(ap);
  fputc(0, o->f);
  o->count++;
}
__attribute__((unused)) static void proto_end(struct proto_out *o) {
  fprintf(o->f, "end%c%ld%c", 0, o->count, 0);
  fflush(o->f);
}

#endif
