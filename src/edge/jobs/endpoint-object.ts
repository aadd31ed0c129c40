/// <reference types="@cloudflare/workers-types" />
/**
 * `WebhookEndpoint`, a Durable Object per callback URL: remembers that the URL answered 410 Gone, which in
 * Standard Webhooks means "stop sending". While disabled, new jobs naming the URL are refused and queued
 * ones are not delivered. The disabling lapses after `WEBHOOK_ENDPOINT_DISABLED_S` (an alarm clears it),
 * so a receiver that comes back is not shut out forever.
 */
import { DurableObject } from "cloudflare:workers";

export interface EndpointState {
  disabledAt: number;
  until: number;
  reason: string;
}

const KEY = "disabled";

export class WebhookEndpoint extends DurableObject {
  /** Why the endpoint is disabled, or null if it may receive deliveries. */
  async disabled(): Promise<EndpointState | null> {
    const state = await this.ctx.storage.get<EndpointState>(KEY);
    if (state === undefined || state.until <= Date.now()) return null;
    return state;
  }

  async disable(reason: string, forMs: number): Promise<EndpointState> {
    const now = Date.now();
    const state: EndpointState = { disabledAt: now, until: now + forMs, reason };
    await this.ctx.storage.put(KEY, state);
    await this.ctx.storage.setAlarm(state.until);
    return state;
  }

  override async alarm(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }
}
