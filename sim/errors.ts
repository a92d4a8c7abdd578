/** An XAPI failure: ErrorDescription = [code, ...params]. */
export class XapiError extends Error {
  readonly code: string;
  readonly params: string[];
  constructor(code: string, params: string[] = []) {
    super(code);
    this.name = 'XapiError';
    this.code = code;
    this.params = params;
  }
  get description(): string[] {
    return [this.code, ...this.params];
  }
}

export const fail = (code: string, ...params: string[]): never => {
  throw new XapiError(code, params);
};

export function toDescription(e: unknown): string[] {
  if (e instanceof XapiError) return e.description;
  return ['INTERNAL_ERROR', e instanceof Error ? e.message : String(e)];
}

export const SR_FULL_ERROR = (): XapiError =>
  new XapiError('SR_BACKEND_FAILURE_44', ['', 'There is insufficient space', '']);
export const VDI_IO_ERROR = (): XapiError => new XapiError('VDI_IO_ERROR', ['Device I/O errors']);
