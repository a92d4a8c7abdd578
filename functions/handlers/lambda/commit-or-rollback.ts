import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the commit-or-rollback step (see aws-deps.ts). */
export const handler = stepHandler('commit-or-rollback');
