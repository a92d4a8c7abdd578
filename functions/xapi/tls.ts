/**
 * The one undici dispatcher a client uses for RPCs and data transfers, with XAPI's TLS policy:
 * https verifies against a pinned SHA-256 certificate fingerprint (checked on the socket right after
 * the handshake, before a single request byte is written) or against a CA bundle / the system CAs.
 * Certificates are never accepted unchecked.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { XapiTransportError } from './errors.js';
import { guardSocket } from './undici-workaround.js';
import { trackWrites } from './written.js';

export interface TlsOptions {
  /** SHA-256 fingerprint of the server certificate, hex, colons optional. */
  fingerprint256?: string;
  /** PEM CA bundle. */
  ca?: string;
}

/** `ab:cd…` / `ABCD…` → `AB:CD:…` (Node's `fingerprint256` format). */
export function normaliseFingerprint(fp: string): string {
  const hex = fp.replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new TypeError('tls.fingerprint256 must be 64 hex digits (SHA-256)');
  return hex.match(/../g)!.join(':');
}

/** SHA-256 fingerprint of a PEM certificate (e.g. from `host.get_server_certificate`). */
export function fingerprintOfPem(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

export class CertificatePins {
  readonly #pins = new Set<string>();
  constructor(initial?: string) {
    if (initial) this.#pins.add(normaliseFingerprint(initial));
  }
  get active(): boolean {
    return this.#pins.size > 0;
  }
  add(fp: string): void {
    this.#pins.add(normaliseFingerprint(fp));
  }
  has(fp: string): boolean {
    return this.#pins.has(fp);
  }
}

export interface DispatcherOptions {
  tls?: TlsOptions;
  pins: CertificatePins;
  connectTimeoutMs: number;
}

export function createDispatcher(o: DispatcherOptions): Dispatcher {
  const pinned = o.pins.active;
  const base = buildConnector({
    timeout: o.connectTimeoutMs,
    // With a pin the chain cannot verify (self-signed); the pin check below replaces it.
    rejectUnauthorized: !pinned,
    // A resumed session skips the handshake's certificate: never resume when pinning.
    maxCachedSessions: pinned ? 0 : 100,
    ...(o.tls?.ca ? { ca: o.tls.ca } : {}),
  });
  const connect: buildConnector.connector = (options, callback) => {
    base(options, (err, socket) => {
      if (err || !socket) {
        callback(err ?? new Error('no socket'), null);
        return;
      }
      if (pinned && options.protocol === 'https:') {
        const cert = (socket as TLSSocket).getPeerCertificate?.();
        const fp = cert && typeof cert.fingerprint256 === 'string' ? cert.fingerprint256 : '';
        if (!o.pins.has(fp)) {
          socket.destroy();
          callback(
            new XapiTransportError(
              `TLS certificate of ${options.hostname} does not match the pinned SHA-256 fingerprint`,
              'CERT_FINGERPRINT_MISMATCH',
            ),
            null,
          );
          return;
        }
      }
      guardSocket(socket);
      trackWrites(socket);
      callback(null, socket);
    });
  };
  return new Agent({ connect, keepAliveTimeout: 10_000 });
}
