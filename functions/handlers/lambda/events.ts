import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { RunResult } from '../../replication/contract.js';
import type { RunEventSink } from '../../replication/ports.js';

export const RUN_EVENT_SOURCE = 'xcr';

export function runEventDetailType(result: Pick<RunResult, 'status'>): string {
  return `xcr run ${result.status}`;
}

/** Publishes one event per run: source `xcr`, detail-type `xcr run <status>`, detail = the run result. */
export class EventBridgeRunEventSink implements RunEventSink {
  constructor(
    private readonly client: Pick<EventBridgeClient, 'send'>,
    private readonly eventBusName: string,
  ) {}

  publish(result: RunResult): Promise<void> {
    return this.publishEvent(runEventDetailType(result), result);
  }

  async publishEvent(detailType: string, detail: object): Promise<void> {
    const out = await this.client.send(
      new PutEventsCommand({
        Entries: [
          {
            Source: RUN_EVENT_SOURCE,
            DetailType: detailType,
            Detail: JSON.stringify(detail),
            EventBusName: this.eventBusName,
            Resources: [],
          },
        ],
      }),
    );
    if (out.FailedEntryCount) {
      const entry = out.Entries?.[0];
      throw new Error(
        `EventBridge refused the ${detailType} event: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`,
      );
    }
  }
}
