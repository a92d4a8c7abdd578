/** The exit codes of `xcr` (see the README); apart from common.ts so main.ts loads nothing else. */
export const EXIT = { ok: 0, runFailed: 1, badInput: 2, unreachable: 3 } as const;
