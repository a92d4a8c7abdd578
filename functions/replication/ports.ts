import type { XcrConfig } from '../config/schema.js';
import type { LeaseStore } from '../lease/port.js';
import type { RunStore } from '../runstore/port.js';
import type { RunSummary } from './contract.js';
import type { DrillReport } from './drill/contract.js';

export type { LeaseResult, LeaseStore } from '../lease/port.js';
export type { RunStore } from '../runstore/port.js';

/**
 * What a step needs from its runtime. The Lambda entry points build it from AWS services
 * (Secrets Manager, DynamoDB, EventBridge, Powertools); the local runner from the config file,
 * environment variables and local lease and run-store files.
 */
export interface StepLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Where the password of a pool comes from; the value never leaves the process. */
export type PasswordResolver = (poolName: string) => Promise<string>;

export interface RunEventSink {
  publish(result: RunSummary): Promise<void>;
  /** The event of a drill (`xcr drill passed|failed`); sinks that never see drills may leave it out. */
  publishDrill?(report: DrillReport): Promise<void>;
  /** Other events of the job (`xcr failover …`, `xcr failback …`): detail-type and detail. */
  publishEvent?(detailType: string, detail: Record<string, unknown>): Promise<void>;
}

export type Progress = (update: { vmUuid: string; userdevice: string; bytes: number; total: number }) => void;

export interface HandlerDeps {
  config: XcrConfig;
  resolvePassword: PasswordResolver;
  leases: LeaseStore;
  /** The run's work list and per-VM results (a DynamoDB table on AWS, files locally). */
  runs: RunStore;
  events: RunEventSink;
  logger: StepLogger;
  now(): Date;
  progress?: Progress;
}
