// Turns run results into a check's state. A failure first makes the check `failing` and asks
// for a sooner retry; only when `retries` retries failed too is it `down`. Recovery needs
// `recoverAfter` consecutive successes. A successful but degraded run makes it `degraded`.
import type { CheckConfig } from '../config/loader.js';
import type { ProbeResult } from '../probes/types.js';

export const CHECK_STATES = ['unknown', 'ok', 'degraded', 'failing', 'down'] as const;
export type CheckState = (typeof CHECK_STATES)[number];

export interface CheckStatus {
  state: CheckState;
  /** When the check entered this state (epoch ms). */
  since: number;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
}

export interface Verdict {
  previous: CheckState;
  status: CheckStatus;
  changed: boolean;
  /** Milliseconds after which the check should be run again to confirm a failure. */
  retryAfterMs?: number;
}

export class Detector {
  private readonly statuses = new Map<string, CheckStatus>();

  status(name: string): CheckStatus {
    let s = this.statuses.get(name);
    if (!s) this.statuses.set(name, (s = { state: 'unknown', since: Date.now(), consecutiveFailures: 0, consecutiveSuccesses: 0 }));
    return s;
  }

  forget(name: string): void {
    this.statuses.delete(name);
  }

  update(check: CheckConfig, result: ProbeResult, at: number = Date.now()): Verdict {
    const s = this.status(check.name);
    const previous = s.state;
    let next: CheckState;
    let retryAfterMs: number | undefined;
    if (!result.ok) {
      s.consecutiveFailures++;
      s.consecutiveSuccesses = 0;
      if (s.consecutiveFailures > check.retries) next = 'down';
      else {
        next = previous === 'down' ? 'down' : 'failing';
        if (next === 'failing') retryAfterMs = check.retryIntervalMs;
      }
    } else {
      s.consecutiveSuccesses++;
      s.consecutiveFailures = 0;
      const healthy: CheckState = result.degraded ? 'degraded' : 'ok';
      if (previous === 'down' && s.consecutiveSuccesses < check.recoverAfter) next = 'down';
      else next = healthy;
    }
    const changed = next !== previous;
    if (changed) {
      s.state = next;
      s.since = at;
    }
    return { previous, status: s, changed, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }
}
