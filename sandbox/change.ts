// The demo's scripted change, incident 2's story (Region Uppsala): a security update on the Cosmic
// web servers that left the login slower. Done the way a change-management tool would do it,
// through vakt's admin API: announce planned work for the login check, put the update in
// (the login takes `updateMs` longer: slower, but under every threshold the check has), end the
// planned work. vakt then runs the check at once, compares it with its level before the window
// and raises "after the planned work ended, login takes 6x as long as before"; rolling the update
// back (POST /faults/login/ok) clears it after a few runs at the old level.
//
//   POST /changes/login-update   starts it (409 while one runs); GET /changes shows where it is.
import type { LoginFaults } from './login.js';

export interface ChangeTiming {
  /** From the announcement to putting the update in (the check runs in the window meanwhile). */
  applyAfterMs: number;
  /** From the announcement to ending the planned work. */
  endAfterMs: number;
}

/** The demo's timing: two or three runs of the 10 s login check in the window, with and without the update. */
export const DEFAULT_CHANGE_TIMING: ChangeTiming = { applyAfterMs: 15_000, endAfterMs: 40_000 };

/** The checks the update touches (config/default.yaml's web login). */
export const CHANGE_CHECKS = ['cosmic-login'];
export const CHANGE_TITLE = 'Security update on the Cosmic web servers';

export type ChangeStep = 'idle' | 'announced' | 'applied' | 'ended' | 'failed';

export interface ChangeStatus {
  step: ChangeStep;
  /** The planned-work window's id in the agent. */
  window?: string;
  /** Why it failed. */
  error?: string;
  /** What happens next, for a person following along. */
  next?: string;
}

/** The agent's JSON reply (its own API's, a few hundred bytes), or {} when it is no JSON object. */
async function reply(res: Response): Promise<Record<string, unknown>> {
  const v: unknown = await res.json().catch(() => undefined);
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
}

export class ScriptedChange {
  /** The agent's base URL (vakt demo sets it once the agent listens). */
  agentUrl: string | undefined;
  private status: ChangeStatus = { step: 'idle' };
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly faults: LoginFaults,
    private readonly timing: ChangeTiming = DEFAULT_CHANGE_TIMING,
  ) {}

  get state(): ChangeStatus {
    return { ...this.status };
  }

  /** Starts the change; an error when one is under way or no agent is known. */
  async start(): Promise<ChangeStatus | { error: string; status: number }> {
    if (this.status.step === 'announced' || this.status.step === 'applied')
      return { status: 409, error: `a change is under way (${this.status.step}); GET /changes shows where it is` };
    const agent = this.agentUrl;
    if (agent === undefined) return { status: 409, error: 'no agent to announce the change to (the sandbox runs without vakt demo)' };
    this.faults.login = 'ok';
    const res = await fetch(`${agent}/api/v1/maintenance`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: CHANGE_TITLE, checks: CHANGE_CHECKS, duration: '1h' }),
      signal: AbortSignal.timeout(5000),
    }).catch((err: unknown) => err as Error);
    if (res instanceof Error) return this.fail(`the agent did not take the planned work: ${res.message}`);
    const body = await reply(res);
    if (!res.ok || typeof body.id !== 'string')
      return this.fail(`the agent refused the planned work: HTTP ${res.status} ${typeof body.error === 'string' ? body.error : ''}`.trim());
    const window = body.id;
    const s = (ms: number) => `${Math.round(ms / 1000)} s`;
    this.status = { step: 'announced', window, next: `the update goes in after ${s(this.timing.applyAfterMs)}` };
    this.stop();
    this.timers.push(
      setTimeout(() => {
        this.faults.login = 'update';
        this.status = {
          step: 'applied',
          window,
          next: `the login takes ${this.faults.updateMs} ms longer; the planned work ends after ${s(this.timing.endAfterMs - this.timing.applyAfterMs)}`,
        };
      }, this.timing.applyAfterMs),
      setTimeout(() => void this.end(agent, window), this.timing.endAfterMs),
    );
    return this.state;
  }

  private async end(agent: string, window: string): Promise<void> {
    const res = await fetch(`${agent}/api/v1/maintenance/${encodeURIComponent(window)}`, {
      method: 'DELETE',
      signal: AbortSignal.timeout(5000),
    }).catch((err: unknown) => err as Error);
    if (res instanceof Error || !res.ok) {
      this.fail(`the agent did not end the planned work: ${res instanceof Error ? res.message : `HTTP ${res.status}`}`);
      return;
    }
    await res.body?.cancel();
    this.status = {
      step: 'ended',
      window,
      next: 'vakt compares the login with its level before the window; roll the update back with POST /faults/login/ok',
    };
  }

  private fail(error: string): { error: string; status: number } {
    this.status = { step: 'failed', error };
    return { status: 502, error };
  }

  /** Stops a change under way (POST /faults/reset): no update goes in, and its planned work ends now. */
  async cancel(): Promise<void> {
    this.stop();
    const { step, window } = this.status;
    if ((step === 'announced' || step === 'applied') && window !== undefined && this.agentUrl !== undefined) await this.end(this.agentUrl, window);
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearTimeout(t);
  }
}
