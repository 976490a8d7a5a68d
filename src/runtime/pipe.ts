// Kernel pipes for a child's stdout and stderr, read here with plain
// read(2)s. Node's `stdio: 'pipe'` is a UNIX socket pair that Node reads only
// through its event loop, in 64 KiB pieces, each a fresh Buffer: a copy out
// of hundreds of MB spent more CPU on that than on its bytes. Node has no
// pipe(2), so a pipe is a FIFO made in a private directory (0700, root's),
// its ends opened at once and the name removed: what is left is an anonymous
// pipe whose ends only this process holds, until it hands one to a child.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';

export interface PipeEnds {
  read: number;
  /** blocking (a child's stdio is made blocking as it starts anyway), opened read-write, as Linux allows on a FIFO */
  write: number;
}

/** Fresh pipes (one mkfifo for all), each read end blocking (a read waits for data) or not (EAGAIN when there is none). */
export function openPipes(reads: ('blocking' | 'non-blocking')[]): PipeEnds[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-pipe-'));
  const opened: number[] = [];
  try {
    const fifos = reads.map((_, i) => path.join(dir, `p${i}`));
    const made = spawnSync('mkfifo', ['-m', '600', '--', ...fifos], { encoding: 'utf8' });
    if (made.status !== 0)
      throw new PaeneError('internal', `mkfifo in ${dir}: ${made.error?.message ?? (made.stderr.trim() || `exit ${made.status}`)}`);
    const { O_RDONLY, O_RDWR, O_NONBLOCK, O_NOFOLLOW } = fs.constants;
    const open = (fifo: string, flags: number) => {
      const fd = fs.openSync(fifo, flags | O_NOFOLLOW);
      opened.push(fd);
      return fd;
    };
    // the writer first: a blocking open of the reader then finds one and does not wait
    const ends = fifos.map((f, i) => {
      const write = open(f, O_RDWR);
      return { write, read: open(f, O_RDONLY | (reads[i] === 'non-blocking' ? O_NONBLOCK : 0)) };
    });
    opened.length = 0;
    return ends;
  } finally {
    for (const fd of opened) fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Makes the write end `fd` non-blocking for every process that holds it
 * (O_NONBLOCK belongs to the open file, shared by a child's copy), then lets
 * it go (closed when the event loop next runs). Node has no fcntl; libuv's
 * uv_pipe_open sets the flag, as its documentation says. Called after the
 * child started: libuv makes a child's stdio blocking as it starts it.
 */
export function releaseNonBlocking(fd: number): void {
  new net.Socket({ fd, readable: false, writable: true }).destroy();
}
