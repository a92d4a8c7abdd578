import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { RunSummary } from '../../replication/contract.js';
import type { RunEventSink } from '../../replication/ports.js';

export const RUN_EVENT_SOURCE = 'xcr';

export function runEventDetailType(result: Pick<RunSummary, 'status'>): string {
  return `xcr run ${result.status}`;
}

/**
 * Publishes one event per run: source `xcr`, detail-type `xcr run <status>`, detail = the run summary
 * (counters and the first failed VMs, so its size does not grow with the job: EventBridge takes 256 KB).
 */
export class EventBridgeRunEventSink implements RunEventSink {
  constructor(
    private readonly client: Pick<EventBridgeClient, 'send'>,
    private readonly eventBusName: string,
  ) {}

  async publish(result: RunSummary): Promise<void> {
    const out = await this.client.send(
      new PutEventsCommand({
        Entries: [
          {
            Source: RUN_EVENT_SOURCE,
            DetailType: runEventDetailType(result),
            Detail: JSON.stringify(result),
            EventBusName: this.eventBusName,
            Resources: [],
          },
        ],
      }),
    );
    if (out.FailedEntryCount) {
      const entry = out.Entries?.[0];
      throw new Error(
        `EventBridge refused the run event: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`,
      );
    }
  }
}
