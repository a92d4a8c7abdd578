#!/usr/bin/env node
// The `xcr` command: registers tsx (a dependency) in this process and runs the TypeScript CLI.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
