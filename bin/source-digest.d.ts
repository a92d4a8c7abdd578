export function sourceDigest(root: string, dirs: readonly string[], files?: readonly string[]): string;
