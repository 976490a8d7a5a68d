// An OCI bundle's config.json (runtime-spec 1.x), as types: what
// oci/spec.ts translates and oci/resources.ts maps onto cgroups, and the
// one plan type both make (a device node). Types only.

import type { OciSeccomp } from '../seccomp/oci-profile.js';

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  uidMappings?: unknown[];
  gidMappings?: unknown[];
}

export interface OciIdMap {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciRlimit {
  type: string;
  soft: number;
  hard: number;
}

export interface OciCaps {
  bounding?: string[];
  effective?: string[];
  permitted?: string[];
  inheritable?: string[];
  ambient?: string[];
}

export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user?: { uid: number; gid: number; umask?: number; additionalGids?: number[]; username?: string };
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: OciCaps;
  rlimits?: OciRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  scheduler?: unknown;
  ioPriority?: unknown;
  execCPUAffinity?: unknown;
}

export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface OciHooks {
  prestart?: OciHook[];
  createRuntime?: OciHook[];
  createContainer?: OciHook[];
  startContainer?: OciHook[];
  poststart?: OciHook[];
  poststop?: OciHook[];
}

export interface OciDevice {
  type: string;
  path: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface OciDeviceRule {
  allow: boolean;
  type?: string;
  major?: number | null;
  minor?: number | null;
  access?: string;
}

export interface OciThrottle {
  major: number;
  minor: number;
  rate: number;
}

export interface OciResources {
  devices?: OciDeviceRule[];
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
    useHierarchy?: boolean;
    checkBeforeUpdate?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    burst?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
    idle?: number;
  };
  pids?: { limit?: number };
  blockIO?: {
    weight?: number;
    leafWeight?: number;
    weightDevice?: { major: number; minor: number; weight?: number; leafWeight?: number }[];
    throttleReadBpsDevice?: OciThrottle[];
    throttleWriteBpsDevice?: OciThrottle[];
    throttleReadIOPSDevice?: OciThrottle[];
    throttleWriteIOPSDevice?: OciThrottle[];
  };
  hugepageLimits?: unknown[];
  network?: unknown;
  rdma?: unknown;
  unified?: Record<string, string>;
}

export interface OciLinux {
  namespaces?: { type: string; path?: string }[];
  uidMappings?: OciIdMap[];
  gidMappings?: OciIdMap[];
  timeOffsets?: unknown;
  devices?: OciDevice[];
  cgroupsPath?: string;
  resources?: OciResources;
  rootfsPropagation?: string;
  seccomp?: OciSeccomp;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  intelRdt?: unknown;
  personality?: unknown;
  memoryPolicy?: unknown;
  netDevices?: unknown;
}

export interface OciConfig {
  ociVersion: string;
  root?: { path: string; readonly?: boolean };
  mounts?: OciMount[];
  process?: OciProcess;
  hostname?: string;
  domainname?: string;
  hooks?: OciHooks;
  annotations?: Record<string, string>;
  linux?: OciLinux;
}

export interface PlanDevice {
  path: string;
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
  mode: number;
  uid: number;
  gid: number;
}
