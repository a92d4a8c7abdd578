/**
 * AWS list prices the cost estimate uses: region us-east-1 (N. Virginia), on-demand, no free tier,
 * as published on the services' pricing pages in 2025. Other regions cost up to ~30 % more; update
 * these constants (one place) for yours. Not counted: data transfer, VPC endpoints or NAT, CloudWatch
 * logs and metrics, Secrets Manager (a few API calls per run), KMS.
 */
export const PRICES = {
  region: 'us-east-1',
  /** Step Functions Standard workflows: $0.025 per 1,000 state transitions. */
  sfnPerTransition: 0.025 / 1000,
  /** Lambda on arm64 (the step functions' architecture): $0.0000133334 per GB-second (first tier). */
  lambdaArmPerGbSecond: 0.0000133334,
  /** Lambda requests: $0.20 per million invocations. */
  lambdaPerRequest: 0.2 / 1e6,
  /** DynamoDB on-demand: $0.625 per million write request units (a lease write is one, < 1 KB). */
  dynamoPerWrite: 0.625 / 1e6,
  /** DynamoDB on-demand: $0.125 per million read request units. */
  dynamoPerRead: 0.125 / 1e6,
  /** EventBridge Scheduler: $1.00 per million scheduled invocations. */
  schedulerPerInvocation: 1 / 1e6,
} as const;

/** Days in the month the estimates are per (365.25 / 12). */
export const DAYS_PER_MONTH = 30.4375;
