import type { XcrConfig } from '../config/schema.js';
import type { LeaseStore } from '../lease/port.js';
import type { RunResult } from './contract.js';

export type { LeaseResult, LeaseStore } from '../lease/port.js';

/**
 * What a step needs from its runtime. The Lambda entry points build it from AWS services
 * (Secrets Manager, DynamoDB, EventBridge, Powertools); the local runner from the config file,
 * environment variables and a local lease file.
 */
export interface StepLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Where the password of a pool comes from; the value never leaves the process. */
export type PasswordResolver = (poolName: string) => Promise<string>;

export interface RunEventSink {
  publish(result: RunResult): Promise<void>;
  /** Other events of the job (`xcr failover …`, `xcr failback …`): detail-type and detail. */
  publishEvent?(detailType: string, detail: Record<string, unknown>): Promise<void>;
}

export type Progress = (update: { vmUuid: string; userdevice: string; bytes: number; total: number }) => void;

export interface HandlerDeps {
  config: XcrConfig;
  resolvePassword: PasswordResolver;
  leases: LeaseStore;
  events: RunEventSink;
  logger: StepLogger;
  now(): Date;
  progress?: Progress;
}
