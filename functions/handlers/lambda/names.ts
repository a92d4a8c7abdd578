/** Names shared by the Lambda entry points and the CDK app (metrics the alarms watch, environment). */
export const METRICS_NAMESPACE = 'xcr';
/** Powertools adds `service` to every metric's dimensions: alarms must name it too. */
export const SERVICE_NAME = 'xcr';
export const LAG_METRIC_NAME = 'RecoveryPointAgeMinutes';

export const ENV = {
  configFile: 'XCR_CONFIG_FILE',
  leaseTable: 'XCR_LEASE_TABLE',
  runTable: 'XCR_RUN_TABLE',
  eventBus: 'XCR_EVENT_BUS',
  dynamoEndpoint: 'XCR_DYNAMODB_ENDPOINT',
} as const;
/** Emitted by the drill's report step: 1 when every drilled point booted and passed its check, else 0. */
export const DRILL_PASSED_METRIC = 'DrillPassed';
/** Emitted by the drill's report step, once per point that passed: seconds from VM.start to the check. */
export const DRILL_BOOT_METRIC = 'DrillBootSeconds';

/** Every event xcr publishes has this source; the detail-type says what ended and how. */
export const RUN_EVENT_SOURCE = 'xcr';

/** `xcr run <status>` (succeeded, partial, failed, skipped). */
export function runEventDetailType(result: { status: string }): string {
  return `xcr run ${result.status}`;
}
