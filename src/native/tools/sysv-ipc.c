/*
 * sysv-ipc: creates and reads System V IPC objects with a *fixed* key, as two
 * PostgreSQL instances would.  Used by the demo and the isolation tests, which
 * copy it into a context's /tmp; it is not part of any image.
 *
 *   sysv-ipc create KEY VALUE   shm segment + semaphore set + message queue,
 *                               all with KEY (IPC_EXCL); stores VALUE in all three
 *   sysv-ipc read KEY           prints VALUE as found in the shm segment and the queue
 *   sysv-ipc remove KEY         removes the three objects
 *   sysv-ipc shm KEY BYTES      creates (and touches) one shm segment of BYTES
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

struct msg {
  long type;
  char text[256];
};

static int fail(const char *what, key_t key) {
  printf("error %s key=0x%x: %s (errno %d)\n", what, (unsigned)key, strerror(errno), errno);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: sysv-ipc create|read|remove|shm KEY [ARG]\n");
    return 2;
  }
  key_t key = (key_t)strtoul(argv[2], NULL, 0);
  if (!strcmp(argv[1], "create") && argc == 4) {
    int shm = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (shm < 0) return fail("shmget", key);
    char *p = shmat(shm, NULL, 0);
    if (p == (void *)-1) return fail("shmat", key);
    snprintf(p, 4096, "%s", argv[3]);
    shmdt(p);
    int sem = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
    if (sem < 0) return fail("semget", key);
    struct sembuf up = {0, 1, 0};
    if (semop(sem, &up, 1) != 0) return fail("semop", key);
    int q = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    if (q < 0) return fail("msgget", key);
    struct msg m = {1, {0}};
    snprintf(m.text, sizeof m.text, "%s", argv[3]);
    if (msgsnd(q, &m, strlen(m.text) + 1, 0) != 0) return fail("msgsnd", key);
    printf("created key=0x%x shmid=%d semid=%d msqid=%d value=%s\n", (unsigned)key, shm, sem, q, argv[3]);
    return 0;
  }
  if (!strcmp(argv[1], "read")) {
    int shm = shmget(key, 0, 0);
    if (shm < 0) return fail("shmget", key);
    char *p = shmat(shm, NULL, SHM_RDONLY);
    if (p == (void *)-1) return fail("shmat", key);
    int sem = semget(key, 0, 0);
    if (sem < 0) return fail("semget", key);
    int semval = semctl(sem, 0, GETVAL);
    int q = msgget(key, 0);
    if (q < 0) return fail("msgget", key);
    struct msg m;
    ssize_t n = msgrcv(q, &m, sizeof m.text, 0, IPC_NOWAIT);
    if (n < 0) return fail("msgrcv", key);
    printf("read key=0x%x shm=%s sem=%d msg=%s\n", (unsigned)key, p, semval, m.text);
    /* put the message back so reads can repeat */
    msgsnd(q, &m, (size_t)n, 0);
    shmdt(p);
    return 0;
  }
  if (!strcmp(argv[1], "remove")) {
    int shm = shmget(key, 0, 0), sem = semget(key, 0, 0), q = msgget(key, 0);
    if (shm >= 0) shmctl(shm, IPC_RMID, NULL);
    if (sem >= 0) semctl(sem, 0, IPC_RMID);
    if (q >= 0) msgctl(q, IPC_RMID, NULL);
    printf("removed key=0x%x\n", (unsigned)key);
    return 0;
  }
  if (!strcmp(argv[1], "shm") && argc == 4) {
    size_t bytes = strtoull(argv[3], NULL, 0);
    int shm = shmget(key, bytes, IPC_CREAT | IPC_EXCL | 0600);
    if (shm < 0) return fail("shmget", key);
    char *p = shmat(shm, NULL, 0);
    if (p == (void *)-1) return fail("shmat", key);
    memset(p, 1, bytes);
    shmdt(p);
    printf("shm key=0x%x shmid=%d bytes=%zu\n", (unsigned)key, shm, bytes);
    return 0;
  }
  fprintf(stderr, "usage: sysv-ipc create|read|remove|shm KEY [ARG]\n");
  return 2;
}
