import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { XcrConfig } from '../../config/schema.js';
import type { PasswordResolver } from '../../replication/ports.js';

/** How long a container reuses a password it read (a rotated secret is picked up after this). */
export const SECRET_CACHE_MS = 5 * 60 * 1000;

/** A secret holds the password as plain text, or as JSON with a "password" field. */
export function passwordFromSecretString(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      return text;
    }
    if (parsed && typeof parsed === 'object' && 'password' in parsed) {
      const value = (parsed as { password: unknown }).password;
      if (typeof value === 'string' && value) return value;
    }
    throw new Error('the secret is JSON without a non-empty "password" field');
  }
  return text;
}

/**
 * Reads pool passwords from Secrets Manager, cached per container. Errors name the pool and the
 * secret reference, never the value.
 */
export function secretsManagerPasswordResolver(
  config: XcrConfig,
  client: Pick<SecretsManagerClient, 'send'>,
  opts: { cacheMs?: number; now?: () => number } = {},
): PasswordResolver {
  const cacheMs = opts.cacheMs ?? SECRET_CACHE_MS;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { value: Promise<string>; at: number }>();
  return async (poolName) => {
    const ref = config.pools[poolName]?.password;
    if (!ref) throw new Error(`pool "${poolName}" is not in the configuration`);
    if (!('secret' in ref)) {
      throw new Error(
        `pools.${poolName}.password: on AWS use { "secret": "<name or ARN>" }, not an env reference`,
      );
    }
    const hit = cache.get(ref.secret);
    if (hit && now() - hit.at < cacheMs) return hit.value;
    const value = (async () => {
      try {
        const out = await client.send(new GetSecretValueCommand({ SecretId: ref.secret }));
        if (!out.SecretString) throw new Error('it has no SecretString (binary secrets are not supported)');
        return passwordFromSecretString(out.SecretString);
      } catch (err) {
        const name = err instanceof Error ? err.name : 'Error';
        const message = err instanceof Error ? err.message : String(err);
        throw new Error(
          `pools.${poolName}.password: cannot read secret "${ref.secret}": ${name}: ${message}`,
        );
      }
    })();
    cache.set(ref.secret, { value, at: now() });
    // A failed read is not cached: the next invocation tries again.
    value.catch(() => cache.delete(ref.secret));
    return value;
  };
}
