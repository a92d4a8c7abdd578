/** The XAPI pool simulator: in-process API. */
export { defaultLayout } from './default-layout.js';
export { startPool } from './pool.js';
export type { SimDiskSpec, SimPool, SimPoolSpec, SimSrSpec, SimTestApi, SimVmSpec } from './types.js';
