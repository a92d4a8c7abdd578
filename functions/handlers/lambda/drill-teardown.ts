import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the drill's teardown step (see aws-deps.ts). */
export const handler = stepHandler('drill-teardown');
