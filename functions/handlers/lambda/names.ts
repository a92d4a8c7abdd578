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
