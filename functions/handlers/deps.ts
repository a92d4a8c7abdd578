import type { XcrConfig } from '../config/schema.js';
import type { RunResult } from './contract.js';

/**
 * What a step needs from its runtime. The Lambda entry points build it from AWS services
 * (Secrets Manager, DynamoDB, EventBridge, Powertools); the local runner from the config file,
 * environment variables and a local lease file.
 */
export interface LeaseStore {
  /** Takes the lease, or renews it when `owner` already holds it. */
  acquire(key: string, owner: string, ttlMs: number): Promise<LeaseResult>;
  /** Releases the lease if `owner` holds it; no error otherwise. */
  release(key: string, owner: string): Promise<void>;
}

export type LeaseResult = { acquired: true } | { acquired: false; holder: string; expiresAt: Date };

export interface StepLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Where the password of a pool comes from; the value never leaves the process. */
export type PasswordResolver = (poolName: string) => Promise<string>;

export interface RunEventSink {
  publish(result: RunResult): Promise<void>;
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
