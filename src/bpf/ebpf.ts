// A tiny eBPF assembler: enough to write the cgroup sock_addr programs of
// src/net/sockaddr.ts in TypeScript, with no LLVM and no libbpf. An
// instruction is 8 bytes, little-endian (the only byte order paene runs on):
//   u8 code | u4 dst | u4 src | s16 off | s32 imm
// ld_imm64 takes two slots (the upper 32 bits in the second one's imm).
//
// Jumps name labels; assemble() resolves them into slot offsets. It also
// drops the instructions no path reaches: the kernel's verifier rejects a
// program with unreachable code, and generated code is much simpler to write
// when a branch may fall through into a block nobody needs.

import { PaeneError } from '../model/errors.js';

// instruction classes
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;
// memory sizes and modes
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;
export const BPF_IMM = 0x00;
export const BPF_MEM = 0x60;
// operand source: the immediate (K) or the src register (X)
export const BPF_K = 0x00;
export const BPF_X = 0x08;

export const ALU_OPS = {
  add: 0x00,
  sub: 0x10,
  mul: 0x20,
  div: 0x30,
  or: 0x40,
  and: 0x50,
  lsh: 0x60,
  rsh: 0x70,
  neg: 0x80,
  mod: 0x90,
  xor: 0xa0,
  mov: 0xb0,
  arsh: 0xc0,
} as const;
export type AluOp = keyof typeof ALU_OPS;
export const JMP_OPS = {
  jeq: 0x10,
  jgt: 0x20,
  jge: 0x30,
  jset: 0x40,
  jne: 0x50,
  jsgt: 0x60,
  jsge: 0x70,
  jlt: 0xa0,
  jle: 0xb0,
  jslt: 0xc0,
  jsle: 0xd0,
} as const;
export type JmpOp = keyof typeof JMP_OPS;
export const BPF_JA = 0x00;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;
/** ld_imm64's src_reg when its immediate is a map fd; a map value's address (fd + offset). */
export const BPF_PSEUDO_MAP_FD = 1;
export const BPF_PSEUDO_MAP_VALUE = 2;

export type Size = 1 | 2 | 4 | 8;
const SIZE_CODE: Record<Size, number> = { 1: BPF_B, 2: BPF_H, 4: BPF_W, 8: BPF_DW };
export const SIZE_OF_CODE: Record<number, Size> = { [BPF_B]: 1, [BPF_H]: 2, [BPF_W]: 4, [BPF_DW]: 8 };

/** r0 = return value / helper result, r1-r5 helper arguments (clobbered by calls), r6-r9 callee-saved, r10 frame pointer (read-only). */
export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
export const R0 = 0,
  R1 = 1,
  R2 = 2,
  R3 = 3,
  R4 = 4,
  R5 = 5,
  R6 = 6,
  R7 = 7,
  R8 = 8,
  R9 = 9,
  R10 = 10;

export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

/** One assembler item: an instruction (or ld_imm64 pair) and, for jumps, the label it targets. */
interface Item {
  insns: Insn[];
  target?: string;
}

const toS32 = (n: number): number => {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0xffffffff) throw new PaeneError('internal', `eBPF immediate out of range: ${n}`);
  return n | 0; // 0x80000000..0xffffffff are written as their two's complement
};

export class Asm {
  private items: Item[] = [];
  private labels = new Map<string, number>();
  private fresh = 0;

  /** A new unique label name (for generated code). */
  newLabel(hint = 'L'): string {
    return `${hint}.${this.fresh++}`;
  }

  /** Marks the position of the next instruction. */
  label(name: string): this {
    if (this.labels.has(name)) throw new PaeneError('internal', `eBPF label defined twice: ${name}`);
    this.labels.set(name, this.items.length);
    return this;
  }

  private emit(insn: Insn, target?: string): this {
    this.items.push({ insns: [insn], target });
    return this;
  }

  // ALU: 64-bit operates on whole registers; 32-bit on the low halves and zero-extends the result.
  alu64(op: AluOp, dst: Reg, srcOrImm: Reg | { imm: number }): this {
    return this.alu(BPF_ALU64, op, dst, srcOrImm);
  }
  alu32(op: AluOp, dst: Reg, srcOrImm: Reg | { imm: number }): this {
    return this.alu(BPF_ALU, op, dst, srcOrImm);
  }
  private alu(cls: number, op: AluOp, dst: Reg, s: Reg | { imm: number }): this {
    if (typeof s === 'number') return this.emit({ code: cls | ALU_OPS[op] | BPF_X, dst, src: s, off: 0, imm: 0 });
    return this.emit({ code: cls | ALU_OPS[op] | BPF_K, dst, src: 0, off: 0, imm: toS32(s.imm) });
  }
  mov64(dst: Reg, s: Reg | { imm: number }): this {
    return this.alu64('mov', dst, s);
  }
  mov32(dst: Reg, s: Reg | { imm: number }): this {
    return this.alu32('mov', dst, s);
  }

  /** dst = a 64-bit constant (two slots). */
  ldImm64(dst: Reg, value: bigint): this {
    const v = BigInt.asUintN(64, value);
    const lo = Number(v & 0xffffffffn) | 0;
    const hi = Number(v >> 32n) | 0;
    this.items.push({
      insns: [
        { code: BPF_LD | BPF_DW | BPF_IMM, dst, src: 0, off: 0, imm: lo },
        { code: 0, dst: 0, src: 0, off: 0, imm: hi },
      ],
    });
    return this;
  }

  /**
   * dst = a map the loader binds (ld_imm64 with src_reg BPF_PSEUDO_MAP_FD):
   * the immediate says which of the loader's maps (0, 1, ...); paene-bpf
   * puts that map's fd there before loading, and the kernel turns it into
   * the map's address.
   */
  ldMap(dst: Reg, index = 0): this {
    this.items.push({
      insns: [
        { code: BPF_LD | BPF_DW | BPF_IMM, dst, src: BPF_PSEUDO_MAP_FD, off: 0, imm: index },
        { code: 0, dst: 0, src: 0, off: 0, imm: 0 },
      ],
    });
    return this;
  }

  /** dst = *(size *)(src + off) */
  ldx(size: Size, dst: Reg, src: Reg, off: number): this {
    return this.emit({ code: BPF_LDX | BPF_MEM | SIZE_CODE[size], dst, src, off, imm: 0 });
  }
  /** *(size *)(dst + off) = src */
  stx(size: Size, dst: Reg, off: number, src: Reg): this {
    return this.emit({ code: BPF_STX | BPF_MEM | SIZE_CODE[size], dst, src, off, imm: 0 });
  }
  /** *(size *)(dst + off) = imm (sign-extended to 8 bytes for size 8) */
  st(size: Size, dst: Reg, off: number, imm: number): this {
    return this.emit({ code: BPF_ST | BPF_MEM | SIZE_CODE[size], dst, src: 0, off, imm: toS32(imm) });
  }

  /** Conditional jump comparing whole registers (imm sign-extended to 64 bits). */
  jmp(op: JmpOp, dst: Reg, s: Reg | { imm: number }, target: string): this {
    return this.jump(BPF_JMP, op, dst, s, target);
  }
  /** Conditional jump comparing the low 32 bits: what address words need (0x80000000 and up would not survive sign extension). */
  jmp32(op: JmpOp, dst: Reg, s: Reg | { imm: number }, target: string): this {
    return this.jump(BPF_JMP32, op, dst, s, target);
  }
  private jump(cls: number, op: JmpOp, dst: Reg, s: Reg | { imm: number }, target: string): this {
    if (typeof s === 'number') return this.emit({ code: cls | JMP_OPS[op] | BPF_X, dst, src: s, off: 0, imm: 0 }, target);
    return this.emit({ code: cls | JMP_OPS[op] | BPF_K, dst, src: 0, off: 0, imm: toS32(s.imm) }, target);
  }
  ja(target: string): this {
    return this.emit({ code: BPF_JMP | BPF_JA, dst: 0, src: 0, off: 0, imm: 0 }, target);
  }
  /** Calls kernel helper number `helper` (args r1-r5, result r0; r1-r5 are clobbered). */
  call(helper: number): this {
    return this.emit({ code: BPF_JMP | BPF_CALL, dst: 0, src: 0, off: 0, imm: helper });
  }
  exit(): this {
    return this.emit({ code: BPF_JMP | BPF_EXIT, dst: 0, src: 0, off: 0, imm: 0 });
  }
  /** r0 = value; exit */
  ret(value: number): this {
    return this.mov64(R0, { imm: value }).exit();
  }

  /** Resolves labels, drops unreachable code, and returns the instructions. */
  assemble(): Insn[] {
    const n = this.items.length;
    const targetOf = (i: number): number => {
      const t = this.items[i].target as string;
      const at = this.labels.get(t);
      if (at === undefined) throw new PaeneError('internal', `eBPF label not defined: ${t}`);
      if (at <= i) throw new PaeneError('internal', `eBPF backward jump to ${t}: loops are not used here`);
      return at;
    };
    // Reachability from the first instruction.
    const live = new Array<boolean>(n).fill(false);
    const work = [0];
    while (work.length > 0) {
      const i = work.pop() as number;
      if (i >= n) throw new PaeneError('internal', 'eBPF program falls off its end (missing exit)');
      if (live[i]) continue;
      live[i] = true;
      const code = this.items[i].insns[0].code;
      const cls = code & 0x07;
      const isJmp = cls === BPF_JMP || cls === BPF_JMP32;
      const op = code & 0xf0;
      if (isJmp && op === BPF_EXIT) continue;
      if (this.items[i].target !== undefined) work.push(targetOf(i));
      if (!(isJmp && op === BPF_JA && cls === BPF_JMP)) work.push(i + 1);
    }
    // Slot numbers of the kept items; a label on a dropped item is never the target of a kept jump.
    const slot = new Array<number>(n + 1).fill(0);
    let s = 0;
    for (let i = 0; i < n; i++) {
      slot[i] = s;
      if (live[i]) s += this.items[i].insns.length;
    }
    slot[n] = s;
    const out: Insn[] = [];
    for (let i = 0; i < n; i++) {
      if (!live[i]) continue;
      const [first, ...rest] = this.items[i].insns;
      const insn = { ...first };
      if (this.items[i].target !== undefined) {
        insn.off = slot[targetOf(i)] - (slot[i] + 1);
        if (insn.off > 0x7fff) throw new PaeneError('internal', 'eBPF jump too far');
      }
      out.push(insn, ...rest);
    }
    return out;
  }

  /** The program as the kernel's BPF_PROG_LOAD takes it. */
  toBuffer(): Buffer {
    return encode(this.assemble());
  }
}

export function encode(insns: Insn[]): Buffer {
  const b = Buffer.alloc(insns.length * 8);
  insns.forEach((x, i) => {
    const o = i * 8;
    b[o] = x.code;
    b[o + 1] = (x.dst & 0x0f) | ((x.src & 0x0f) << 4);
    b.writeInt16LE(x.off, o + 2);
    b.writeInt32LE(x.imm, o + 4);
  });
  return b;
}

export function decode(b: Buffer): Insn[] {
  if (b.length % 8 !== 0) throw new PaeneError('invalid-argument', `an eBPF program is a multiple of 8 bytes, not ${b.length}`);
  const out: Insn[] = [];
  for (let o = 0; o < b.length; o += 8) {
    out.push({ code: b[o], dst: b[o + 1] & 0x0f, src: b[o + 1] >> 4, off: b.readInt16LE(o + 2), imm: b.readInt32LE(o + 4) });
  }
  return out;
}

/** enum bpf_attach_type BPF_CGROUP_DEVICE: a cgroup's device program (the OCI device rules on v2) */
export const BPF_CGROUP_DEVICE = 6;
