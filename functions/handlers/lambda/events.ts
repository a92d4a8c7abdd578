import { type EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import type { RunSummary } from '../../replication/contract.js';
import type { DrillReport } from '../../replication/drill/contract.js';
import type { RunEventSink } from '../../replication/ports.js';

import { RUN_EVENT_SOURCE, runEventDetailType } from './names.js';

export { RUN_EVENT_SOURCE, runEventDetailType };

/** `xcr drill passed` / `xcr drill failed`. */
export function drillEventDetailType(report: Pick<DrillReport, 'status'>): string {
  return `xcr drill ${report.status}`;
}

/**
 * Publishes one event per run: source `xcr`, detail-type `xcr run <status>`, detail = the run
 * summary (counters and the first failed VMs, so its size does not grow with the job: EventBridge
 * takes 256 KB); and one per drill: detail-type `xcr drill <status>`, detail = the drill report.
 */
export class EventBridgeRunEventSink implements RunEventSink {
  constructor(
    private readonly client: Pick<EventBridgeClient, 'send'>,
    private readonly eventBusName: string,
  ) {}

  publish(result: RunSummary): Promise<void> {
    return this.publishEvent(runEventDetailType(result), result);
  }

  publishDrill(report: DrillReport): Promise<void> {
    return this.publishEvent(drillEventDetailType(report), report);
  }

  /** Any event of the job (`xcr failover …`, `xcr failback …` and the two above). */
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
