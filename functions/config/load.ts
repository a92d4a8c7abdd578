import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { configSchema, type JobConfig, type XcrConfig } from './schema.js';
import { closestKey, knownKeys } from './suggest.js';

/** A configuration problem, with one line per field: "<path>: <what is wrong and how to fix it>". */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly issues: string[],
    source: string,
  ) {
    super(`invalid configuration (${source}):\n${issues.map((i) => `  - ${i}`).join('\n')}`);
  }
}

function formatIssues(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    const at = (p: readonly PropertyKey[]) => (p.length ? p.map(String).join('.') : '(root)');
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(configSchema, issue.path);
      return issue.keys.map((key) => {
        const near = closestKey(key, known);
        const hint = near ? `did you mean \`${near}\`?` : `known keys: ${known.join(', ')}`;
        // A key that is not a plain name is quoted after its parent's path.
        return /^[\w$-]+$/.test(key)
          ? `${at([...issue.path, key])}: unknown key; ${hint}`
          : `${at(issue.path)}: unknown key ${JSON.stringify(key)}; ${hint}`;
      });
    }
    return [`${at(issue.path)}: ${issue.message}`];
  });
}

/** Validates an already parsed configuration object. */
export function parseConfig(input: unknown, source = 'config'): XcrConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) throw new ConfigError(formatIssues(result.error), source);
  return result.data;
}

/** Reads and validates a JSON configuration file. */
export function loadConfigFile(path: string): XcrConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read the file: ${(err as Error).message}`], path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`not valid JSON: ${(err as Error).message}`], path);
  }
  return parseConfig(json, path);
}

export function findJob(config: XcrConfig, jobId: string): JobConfig {
  const job = config.jobs.find((j) => j.id === jobId);
  if (!job) {
    throw new ConfigError(
      [`jobId: unknown job "${jobId}" (known: ${config.jobs.map((j) => j.id).join(', ')})`],
      'input',
    );
  }
  return job;
}
