// The vocabulary of cgroup writes, shared by the model (what limits mean)
// and the cgroup adapter (what gets written): which version's files, a block
// device, one write. Pure.

export type CgroupVersion = 'v1' | 'v2';

export interface BlockDevice {
  major: number;
  minor: number;
}

/** One value to write into a context's cgroup. For v1, `controller` names the hierarchy. */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
  /**
   * skip this write if the controller or file is absent: files only some kernels
   * or configs have (swap accounting, burst before 5.14), and writes that only
   * reset a limit nobody set to "unlimited"
   */
  optional?: boolean;
}
