// Where a queue check's numbers come from: one reader per source (RabbitMQ's management API,
// ActiveMQ Classic and Artemis over Jolokia, NextGen Connect's REST API, any JSON document, a
// file-drop folder). A reader only reads and normalises; what the numbers mean over time (rates,
// stalls, growth) is decided in probes/queue/probe.ts. Every reply is untrusted: bounded in size,
// parsed defensively, and anything unexpected is a failed run with a reason, never a throw.
import { opendir, stat } from 'node:fs/promises';
import { Agent, buildConnector, request } from 'undici';
import type { QueueOptions, SourceOptions } from './options.js';
import { jsonPath, parseJson } from '../kit/json.js';
import { closePool, describeError, readBounded, reasonAfter } from '../kit/net.js';
import type { Budget } from '../kit/budget.js';
import { setupPhase, timedConnector, type ConnTimes, type TlsFiles } from '../kit/tls.js';
import type { FailureReason, QueueReading } from '../types.js';

/**
 * One queue as a source reports it, before anything is compared with the previous run. Its
 * arrivalRate/drainRate are the source's own (RabbitMQ's *_details.rate), used until totals exist.
 */
export interface SourceReading extends Omit<QueueReading, 'undrainedSeconds'> {
  /** Running totals of messages added / removed, when the source keeps them. */
  arrivedTotal?: number;
  drainedTotal?: number;
  /** Running total of deliveries to consumers, redeliveries included (RabbitMQ deliver_get). */
  deliveredTotal?: number;
  /** directory: the files seen (name + mtime), so arrivals and removals follow from the difference. */
  names?: Set<string>;
  /** The read stopped short (directory maxFiles, Mirth's reading limit): why, for a degraded (partial) run. */
  partial?: string;
  /** The source says the queue does not run (in its own words: RabbitMQ down/crashed, a Mirth channel not in runningStates). */
  stopped?: boolean;
}

/** A source failed to answer usefully. `reason` is the run's failure reason. */
export class SourceError extends Error {
  override readonly name = 'SourceError';
  constructor(
    readonly reason: FailureReason,
    message: string,
    /** Where it failed: fetch, unless setting up the connection failed (resolve, connect, tls). */
    readonly phase: 'resolve' | 'connect' | 'tls' | 'fetch' = 'fetch',
  ) {
    super(message);
  }
}

/** What a reader gets: the check's target and budget, and the options of its own source. */
export interface SourceContext<O extends QueueOptions = QueueOptions> {
  /** The API's base URL (href), or for source directory the folder's absolute path. */
  target: string;
  o: O;
  /** The run's time: its signal, and the deadline connection attempts end at too. */
  budget: Budget;
  /** The `tls` block's files, read by the probe before the run (phase tls when they cannot be). */
  tlsFiles?: TlsFiles;
  /** Where the request under way stands (written by the HTTP sources): the phase a run cut off by its deadline was in. */
  progress: { conn?: ConnTimes; url?: URL };
  secrets: Readonly<Record<string, string>>;
  /** The check's memory (see ProbeContext.memory). */
  memory: Map<string, unknown>;
  /** Removes secret values from text quoted from a server. */
  scrub(text: string): string;
}

/** The options of the sources read over HTTP (all but directory): they share credentials, tls and maxBodySize. */
type ApiOptions = Exclude<QueueOptions, { source: 'directory' }>;

/** Reads the queues of `sc.o`'s source, with that source's reader. */
export function readSource(sc: SourceContext): Promise<SourceReading[]> {
  const { o } = sc;
  switch (o.source) {
    case 'rabbitmq':
      return readRabbitmq({ ...sc, o });
    case 'activemq':
      return readActivemq({ ...sc, o });
    case 'artemis':
      return readArtemis({ ...sc, o });
    case 'mirth':
      return readMirth({ ...sc, o });
    case 'http-json':
      return readHttpJson({ ...sc, o });
    case 'directory':
      return readDirectory({ ...sc, o });
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: one connection pool per run, bounded bodies, JSON only.

interface Reply {
  status: number;
  json: unknown;
  text: string;
}

/** Base URL with a trailing slash, so API paths resolve under a path prefix. */
function base(target: string): URL {
  const u = new URL(target);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u;
}

function connectorFor(sc: SourceContext<ApiOptions>): ReturnType<typeof buildConnector> {
  return buildConnector({
    ...sc.tlsFiles,
    // undici's own connect timeout is 10 s; a connect must not outlive the check's deadline.
    timeout: Math.max(1, Math.ceil(sc.budget.left())),
  });
}

class Http {
  private agent: Agent | undefined;

  constructor(private readonly sc: SourceContext<ApiOptions>) {}

  /** Sends one request; network trouble, auth refusals, non-JSON and oversized bodies become SourceErrors. 404 is returned to the caller. */
  async json(url: URL, init: { method?: 'GET' | 'POST'; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
    const { sc } = this;
    this.agent ??= new Agent({
      connect: timedConnector(connectorFor(sc), (t) => (sc.progress.conn = t), undefined, sc.budget.signal),
      connections: 1,
      pipelining: 1,
    });
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'vakt', ...init.headers };
    if (sc.o.username !== undefined) {
      const password = sc.o.password !== undefined ? (sc.secrets[sc.o.password] ?? '') : '';
      headers.authorization = `Basic ${Buffer.from(`${sc.o.username}:${password}`).toString('base64')}`;
    }
    let res: Awaited<ReturnType<typeof request>>;
    sc.progress.url = url;
    try {
      res = await request(url, {
        method: init.method ?? 'GET',
        headers,
        ...(init.body !== undefined ? { body: init.body } : {}),
        dispatcher: this.agent,
        signal: sc.budget.signal,
      });
    } catch (err) {
      const phase = setupPhase(sc.progress.conn, url) ?? 'fetch';
      throw new SourceError(reasonAfter(err, sc.budget.signal), `${url.pathname}: ${sc.scrub(describeError(err))}`, phase);
    }
    let read: Awaited<ReturnType<typeof readBounded>>;
    try {
      read = await readBounded(res.body, sc.o.maxBodySize);
    } catch (err) {
      throw new SourceError(reasonAfter(err, sc.budget.signal), `reading ${url.pathname}: ${sc.scrub(describeError(err))}`);
    }
    if (read.tooLarge) throw new SourceError('body_too_large', `${url.pathname}: response larger than ${sc.o.maxBodySize} bytes (read stopped)`);
    if (res.statusCode === 401 || res.statusCode === 403)
      throw new SourceError(
        'auth',
        `${url.pathname}: the API refused the credentials (status ${res.statusCode})${/^\s*[{[]/.test(read.text) ? snippet(read.text, sc) : ''}`,
      );
    // Every reader answers a 404 by its status alone: its body is not parsed.
    if (res.statusCode === 404) return { status: 404, json: undefined, text: read.text };
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw new SourceError(
        'http_status',
        `${url.pathname}: status ${res.statusCode}${res.statusCode === 503 ? ' (service unavailable: starting or overloaded)' : ''}${snippet(read.text, sc)}`,
      );
    }
    const json = await this.parse(url, read.text);
    if (json === undefined) {
      const type = (String(res.headers['content-type'] ?? 'no content type').split(';')[0] ?? '').trim().slice(0, 80);
      throw new SourceError(
        'protocol',
        `${url.pathname}: expected JSON, got ${read.bytes} bytes of ${type}${/^\s*</.test(read.text) ? ' (an HTML or XML page: a login page or proxy error?)' : read.text.trim() === '' ? ' (empty)' : ' that does not parse (truncated?)'}`,
      );
    }
    return { status: res.statusCode, json, text: read.text };
  }

  /** The body as JSON; undefined when it is not JSON. JSON beyond the limits of probes/kit/json.ts is a protocol failure. */
  private async parse(url: URL, text: string): Promise<unknown> {
    const r = await parseJson(text, { signal: this.sc.budget.signal });
    if (r.ok) return r.value;
    if (r.error.code === 'syntax') return undefined;
    if (r.error.code === 'aborted') throw new SourceError('timeout', `${url.pathname}: timed out parsing the answer`);
    throw new SourceError('protocol', `${url.pathname}: ${r.error.message}`);
  }

  async close(): Promise<void> {
    if (this.agent) await closePool(this.agent);
  }
}

/** The start of a body, for a message: secrets removed, whitespace folded, at most 120 characters. */
function snippet(text: string, sc: SourceContext<ApiOptions>): string {
  // Scrubbed whole (a cut could halve a secret), folded only at the head: a regex replace over
  // 4 MB of " a a a" takes a second.
  const t = sc.scrub(text).trimStart().slice(0, 1024).replace(/\s+/g, ' ').trim().slice(0, 120);
  return t ? `: ${t}` : '';
}

async function withHttp<T>(sc: SourceContext<ApiOptions>, fn: (http: Http) => Promise<T>): Promise<T> {
  const http = new Http(sc);
  try {
    return await fn(http);
  } finally {
    await http.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Number handling: sources send numbers, numeric strings, null, or nothing.

/** A finite number up to 2^53 (counts beyond that are nonsense, and would poison the running sums). */
function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d{1,16}(\.\d+)?\s*$/.test(v) ? Number(v) : undefined;
  return n !== undefined && Number.isFinite(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER ? n : undefined;
}

function count(v: unknown): number | undefined {
  const n = num(v);
  return n !== undefined && n >= 0 ? n : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Drops undefined fields (exactOptionalPropertyTypes). */
function reading(r: { [K in keyof SourceReading]: SourceReading[K] | undefined }): SourceReading {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (v !== undefined) out[k] = v;
  return out as unknown as SourceReading;
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ management API: GET /api/queues/{vhost}/{name}.

const RABBIT_COLUMNS = [
  'name',
  'state',
  'messages',
  'messages_ready',
  'messages_unacknowledged',
  'consumers',
  'head_message_timestamp',
  'message_stats.publish',
  'message_stats.publish_details.rate',
  'message_stats.deliver_get',
  'message_stats.deliver_get_details.rate',
  'message_stats.ack',
  'message_stats.ack_details.rate',
  'message_stats.deliver_no_ack',
  'message_stats.deliver_no_ack_details.rate',
  'message_stats.get_no_ack',
  'message_stats.get_no_ack_details.rate',
].join(',');

/** The broker's own smoothed rate of a message_stats counter (`<name>_details.rate`). */
function rabbitRate(stats: Record<string, unknown>, name: string): number | undefined {
  const d = stats[`${name}_details`];
  return isRecord(d) ? count(d.rate) : undefined;
}

/**
 * Messages that left a RabbitMQ queue: acknowledged, or delivered/fetched without acknowledgement.
 * Not deliver_get, which also counts redeliveries: a consumer that rejects and requeues a poison
 * message drives it up while nothing leaves. The broker omits counters that never moved, so once
 * there was any delivery a missing one is 0 (a consumer that takes and never acknowledges has
 * deliver_get and no ack).
 */
function rabbitDrained(stats: Record<string, unknown>): number | undefined {
  const delivered = ['deliver_get', 'deliver', 'get', 'ack', 'deliver_no_ack', 'get_no_ack'].some((k) => count(stats[k]) !== undefined);
  if (!delivered) return undefined;
  return [stats.ack, stats.deliver_no_ack, stats.get_no_ack].reduce<number>((sum, v) => sum + (count(v) ?? 0), 0);
}

/** RabbitMQ queue states in which the queue process does not serve (a classic queue's node down, a crashed quorum queue). */
const RABBIT_DOWN_STATES: readonly string[] = ['down', 'crashed', 'stopped', 'terminated'];

async function readRabbitmq(sc: SourceContext<SourceOptions<'rabbitmq'>>): Promise<SourceReading[]> {
  const vhost = encodeURIComponent(sc.o.vhost);
  return withHttp(sc, async (http) => {
    const out: SourceReading[] = [];
    for (const name of sc.o.queues) {
      const url = new URL(`api/queues/${vhost}/${encodeURIComponent(name)}?columns=${RABBIT_COLUMNS}`, base(sc.target));
      const reply = await http.json(url);
      if (reply.status === 404) throw new SourceError('queue_missing', `queue "${name}" not found in vhost "${sc.o.vhost}" (or the vhost does not exist)`);
      const q = reply.json;
      // A queue created moments ago has no statistics yet: `?columns=` then answers [] (about 5 s).
      if (Array.isArray(q) && q.length === 0)
        throw new SourceError('protocol', `queue "${name}": the broker has no statistics for it yet (created in the last seconds?)`);
      if (!isRecord(q)) throw new SourceError('protocol', `${url.pathname}: expected a JSON object for queue "${name}"`);
      const ready = count(q.messages_ready);
      const unacked = count(q.messages_unacknowledged);
      const depth = count(q.messages) ?? (ready !== undefined && unacked !== undefined ? ready + unacked : undefined);
      const state = typeof q.state === 'string' ? q.state.slice(0, 32) : undefined;
      // A queue whose process is gone may come without counts: its state is the news.
      if (depth === undefined && state !== undefined && RABBIT_DOWN_STATES.includes(state))
        throw new SourceError('queue_stopped', `queue "${name}": state ${state} (the broker reports no counts for it)`);
      if (depth === undefined) throw new SourceError('protocol', `queue "${name}": the reply has no message count (statistics not collected yet?)`);
      const stats = isRecord(q.message_stats) ? q.message_stats : {};
      const head = num(q.head_message_timestamp);
      out.push(
        reading({
          queue: name,
          depth,
          ready,
          unacked,
          consumers: count(q.consumers),
          // head_message_timestamp is the AMQP timestamp property, in seconds.
          oldestAgeSeconds: head !== undefined && depth > 0 ? Math.max(0, Date.now() / 1000 - head) : undefined,
          arrivedTotal: count(stats.publish),
          drainedTotal: rabbitDrained(stats),
          deliveredTotal: count(stats.deliver_get),
          arrivalRate: rabbitRate(stats, 'publish'),
          drainRate: ['ack', 'deliver_no_ack', 'get_no_ack'].some((k) => rabbitRate(stats, k) !== undefined)
            ? ['ack', 'deliver_no_ack', 'get_no_ack'].reduce((sum, k) => sum + (rabbitRate(stats, k) ?? 0), 0)
            : undefined,
          deliverRate: rabbitRate(stats, 'deliver_get'),
          state,
          stopped: state !== undefined && RABBIT_DOWN_STATES.includes(state) ? true : undefined,
        }),
      );
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Jolokia (ActiveMQ Classic, Artemis): one bulk POST of read requests; each answer has its own status.

interface JolokiaRead {
  queue: string;
  mbean: string;
  attribute: string[];
}

async function jolokia(
  sc: SourceContext<SourceOptions<'activemq' | 'artemis'>>,
  defaultPath: string,
  reads: JolokiaRead[],
): Promise<Record<string, unknown>[]> {
  const url = new URL((sc.o.jolokiaPath ?? defaultPath).replace(/^\//, ''), base(new URL(sc.target).origin));
  const body = JSON.stringify(reads.map((r) => ({ type: 'read', mbean: r.mbean, attribute: r.attribute })));
  return withHttp(sc, async (http) => {
    // Jolokia in ActiveMQ 5.16+ / Artemis refuses requests without an Origin it allows.
    const reply = await http.json(url, { method: 'POST', headers: { 'content-type': 'application/json', origin: new URL(sc.target).origin }, body });
    if (reply.status === 404) throw new SourceError('http_status', `${url.pathname}: status 404 (no Jolokia at this path; see jolokiaPath)`);
    // A request refused as a whole (no allowed Origin: status 403) is one object, not a list.
    if (!Array.isArray(reply.json) && isRecord(reply.json) && !('request' in reply.json)) {
      const status = num(reply.json.status);
      const why = typeof reply.json.error === 'string' ? `: ${sc.scrub(reply.json.error).slice(0, 160)}` : '';
      throw new SourceError(status === 401 || status === 403 ? 'auth' : 'protocol', `Jolokia refused the request (status ${status ?? 'none'})${why}`);
    }
    const answers = Array.isArray(reply.json) ? reply.json : [reply.json];
    if (answers.length !== reads.length || !answers.every(isRecord))
      throw new SourceError(
        'protocol',
        `${url.pathname}: expected ${reads.length} Jolokia answers, got ${Array.isArray(reply.json) ? answers.length : 'something else'}`,
      );
    return reads.map((r, i) => {
      const a = answers[i] as Record<string, unknown>;
      const status = num(a.status);
      if (status === 404 || (typeof a.error_type === 'string' && a.error_type.endsWith('InstanceNotFoundException'))) {
        throw new SourceError('queue_missing', `queue "${r.queue}" not found (no MBean ${r.mbean})`);
      }
      if (status === 401 || status === 403) throw new SourceError('auth', `Jolokia refused reading queue "${r.queue}" (status ${status})`);
      if (status !== 200 || !isRecord(a.value)) {
        const why = typeof a.error === 'string' ? `: ${sc.scrub(a.error).slice(0, 160)}` : '';
        throw new SourceError('protocol', `Jolokia answered status ${status ?? 'none'} for queue "${r.queue}"${why}`);
      }
      return a.value;
    });
  });
}

/**
 * A destination name as ActiveMQ Classic puts it into its MBean names (JMXSupport.encodeObjectNamePart
 * in 5.17): ":", ",", "'" and '"' become "_", "?" becomes "&qe;", "=" "&amp;" and "*" "&ast;".
 */
export function activemqName(s: string): string {
  return s.replace(/[:,'"?=*]/g, (c) => (c === '?' ? '&qe;' : c === '=' ? '&amp;' : c === '*' ? '&ast;' : '_'));
}

async function readActivemq(sc: SourceContext<SourceOptions<'activemq'>>): Promise<SourceReading[]> {
  const broker = sc.o.broker ?? 'localhost';
  const names = sc.o.queues;
  const values = await jolokia(
    sc,
    '/api/jolokia/',
    names.map((queue) => ({
      queue,
      mbean: `org.apache.activemq:type=Broker,brokerName=${activemqName(broker)},destinationType=Queue,destinationName=${activemqName(queue)}`,
      attribute: ['QueueSize', 'EnqueueCount', 'DequeueCount', 'ConsumerCount', 'InFlightCount'],
    })),
  );
  return names.map((queue, i) => {
    const v = values[i] as Record<string, unknown>;
    const depth = count(v.QueueSize);
    if (depth === undefined) throw new SourceError('protocol', `queue "${queue}": no QueueSize in the Jolokia answer`);
    return reading({
      queue,
      depth,
      unacked: count(v.InFlightCount),
      consumers: count(v.ConsumerCount),
      arrivedTotal: count(v.EnqueueCount),
      drainedTotal: count(v.DequeueCount),
    });
  });
}

function quoted(s: string): string {
  return `"${s.replace(/[\\"*?]/g, (c) => `\\${c}`)}"`;
}

async function readArtemis(sc: SourceContext<SourceOptions<'artemis'>>): Promise<SourceReading[]> {
  const broker = sc.o.broker ?? '0.0.0.0';
  const names = sc.o.queues;
  const values = await jolokia(
    sc,
    '/console/jolokia/',
    names.map((queue) => ({
      queue,
      mbean: `org.apache.activemq.artemis:broker=${quoted(broker)},component=addresses,address=${quoted(sc.o.address ?? queue)},subcomponent=queues,routing-type=${quoted(sc.o.routingType)},queue=${quoted(queue)}`,
      attribute: ['MessageCount', 'MessagesAdded', 'MessagesAcknowledged', 'ConsumerCount', 'DeliveringCount', 'FirstMessageAge'],
    })),
  );
  return names.map((queue, i) => {
    const v = values[i] as Record<string, unknown>;
    const depth = count(v.MessageCount);
    if (depth === undefined) throw new SourceError('protocol', `queue "${queue}": no MessageCount in the Jolokia answer`);
    const age = count(v.FirstMessageAge); // milliseconds; null when the queue is empty
    return reading({
      queue,
      depth,
      unacked: count(v.DeliveringCount),
      consumers: count(v.ConsumerCount),
      oldestAgeSeconds: age !== undefined && depth > 0 ? age / 1000 : undefined,
      arrivedTotal: count(v.MessagesAdded),
      drainedTotal: count(v.MessagesAcknowledged),
    });
  });
}

// ---------------------------------------------------------------------------------------------
// NextGen Connect (Mirth): GET /api/channels/statuses.

/**
 * Mirth's JSON comes from XStream: a list is {"list": {"dashboardStatus": [...]}} and a list of one
 * is the bare object; maps are {"entry": [{"<key class>": KEY, "long": N}, ...]}. Plain JSON
 * arrays and maps are accepted too.
 */
function mirthStatuses(json: unknown): Record<string, unknown>[] | undefined {
  let v: unknown = json;
  if (isRecord(v) && 'list' in v) v = v.list;
  if (isRecord(v) && 'dashboardStatus' in v) v = v.dashboardStatus;
  if (v === null || v === '' || (isRecord(v) && Object.keys(v).length === 0)) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.every(isRecord) ? list : undefined;
}

function mirthStatistics(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!isRecord(v)) return out;
  const entries = 'entry' in v ? v.entry : undefined;
  if (entries !== undefined) {
    for (const e of Array.isArray(entries) ? entries : [entries]) {
      if (!isRecord(e)) continue;
      let key: string | undefined;
      let val: number | undefined;
      for (const [k, x] of Object.entries(e)) {
        if (typeof x === 'string' && /^[A-Z_]+$/.test(x)) key = x;
        else if (k === 'long' || k === 'int' || typeof x === 'number') val = count(x);
      }
      if (key !== undefined && val !== undefined) out[key] = val;
    }
    return out;
  }
  for (const [k, x] of Object.entries(v)) {
    const n = count(x);
    if (n !== undefined) out[k.toUpperCase()] = n;
  }
  return out;
}

/** Most readings one Mirth check makes (channels × destinations); more are counted, not read. */
const MIRTH_MAX_READINGS = 100;

/** One Mirth connector's (or channel's) reading: its own queue, and what left it. */
function mirthReading(label: string, s: Record<string, unknown>, state: string | undefined, runningStates: readonly string[]): SourceReading {
  const stats = mirthStatistics(s.statistics);
  const sent = stats.SENT;
  return reading({
    queue: label,
    depth: count(s.queued) ?? 0,
    state,
    stopped: state !== undefined && !runningStates.includes(state) ? true : undefined,
    errors: stats.ERROR,
    arrivedTotal: stats.RECEIVED !== undefined && stats.RECEIVED > 0 ? stats.RECEIVED : undefined,
    // Whatever left it counts as drained: sent, filtered out, or errored.
    drainedTotal: sent !== undefined ? sent + (stats.FILTERED ?? 0) + (stats.ERROR ?? 0) : undefined,
  });
}

function text(v: unknown): string | undefined {
  // Names that look like numbers arrive as numbers.
  return typeof v === 'string' ? v.slice(0, 200) : typeof v === 'number' ? String(v) : undefined;
}

/**
 * Mirth reads one queue per destination ("channel/destination"): channel totals add SENT over all
 * destinations while RECEIVED counts the source once, so one working destination would hide a
 * stuck one. A channel without destination statuses is read as a whole ("channel").
 */
async function readMirth(sc: SourceContext<SourceOptions<'mirth'>>): Promise<SourceReading[]> {
  return withHttp(sc, async (http) => {
    const url = new URL('api/channels/statuses', base(sc.target));
    // NextGen Connect rejects API calls without X-Requested-With (CSRF guard).
    const reply = await http.json(url, { headers: { 'x-requested-with': 'vakt' } });
    if (reply.status === 404)
      throw new SourceError('http_status', `${url.pathname}: status 404 (is the target the server's base URL, e.g. https://host:8443?)`);
    const statuses = mirthStatuses(reply.json);
    if (!statuses) throw new SourceError('protocol', `${url.pathname}: expected a list of channel statuses`);
    const wanted = sc.o.queues;
    const out: SourceReading[] = [];
    const found = new Set<string>();
    let skipped = 0;
    for (const s of statuses) {
      const name = text(s.name);
      const id = text(s.channelId);
      if (!name && !id) continue;
      const label = wanted?.find((w) => w === name || w === id) ?? (wanted ? undefined : (name ?? id));
      if (label === undefined) continue;
      if (wanted) found.add(label);
      const channelState = text(s.state);
      const children = isRecord(s.childStatuses) ? mirthStatuses(s.childStatuses) : undefined;
      const destinations = (children ?? []).filter(
        (c) => c.statusType === 'DESTINATION_CONNECTOR' || (c.statusType === undefined && num(c.metaDataId) !== undefined && (num(c.metaDataId) as number) > 0),
      );
      // Past the limit the rest are only counted: building readings for every status of a
      // hostile document would hold the event loop.
      if (out.length >= MIRTH_MAX_READINGS) {
        skipped += Math.max(1, destinations.length);
        continue;
      }
      const readings =
        destinations.length > 0
          ? destinations.map((d) => {
              const dState = text(d.state);
              // A stopped channel stops every destination, whatever the destination says.
              return mirthReading(
                `${label}/${text(d.name) ?? text(d.metaDataId) ?? '?'}`,
                d,
                channelState !== undefined && channelState !== dState ? channelState : dState,
                sc.o.runningStates,
              );
            })
          : [mirthReading(label, s, channelState, sc.o.runningStates)];
      for (const r of readings) {
        if (out.length < MIRTH_MAX_READINGS) out.push(r);
        else skipped++;
      }
    }
    for (const w of wanted ?? []) if (!found.has(w)) throw new SourceError('queue_missing', `channel "${w}" not found (by name or id)`);
    const last = out[out.length - 1];
    if (skipped > 0 && last)
      last.partial = `${skipped} more channel destinations not read (at most ${MIRTH_MAX_READINGS} per check: name the channels in queues, or split the check)`;
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Any JSON document: numbers at configured paths.

async function readHttpJson(sc: SourceContext<SourceOptions<'http-json'>>): Promise<SourceReading[]> {
  const { o } = sc;
  return withHttp(sc, async (http) => {
    const url = new URL(sc.target);
    const reply = await http.json(url);
    if (reply.status === 404) throw new SourceError('http_status', `${url.pathname}: status 404`);
    const at = (path: string | undefined, what: string, required: boolean): number | undefined => {
      if (path === undefined) return undefined;
      const v = jsonPath(reply.json, path);
      if (v === undefined || v === null) {
        if (required) throw new SourceError('protocol', `no ${what} at ${path} in the document`);
        return undefined;
      }
      const n = num(v);
      if (n === undefined || n < 0) throw new SourceError('protocol', `${what} at ${path} is not a non-negative number (${describeValue(v)})`);
      return n;
    };
    const depth = at(o.depthPath, 'depth', true) as number;
    const rawAge = at(o.oldestAgePath, 'oldest age', false);
    let age: number | undefined;
    if (rawAge !== undefined) {
      if (o.oldestAgeUnit === 's') age = rawAge;
      else if (o.oldestAgeUnit === 'ms') age = rawAge / 1000;
      else age = Math.max(0, Date.now() / 1000 - (o.oldestAgeUnit === 'timestamp-ms' ? rawAge / 1000 : rawAge));
    }
    return [
      reading({
        queue: o.queues?.[0] ?? 'queue',
        depth,
        consumers: at(o.consumersPath, 'consumers', false),
        oldestAgeSeconds: depth > 0 ? age : undefined,
        arrivedTotal: at(o.arrivedPath, 'arrived total', false),
        drainedTotal: at(o.drainedPath, 'drained total', false),
      }),
    ];
  });
}

/** A JSON value named without serialising it (it may be huge or deeply nested). */
function describeValue(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object' && v !== null) return 'an object';
  return typeof v === 'string' ? `"${v.slice(0, 40)}${v.length > 40 ? '…' : ''}"` : String(v);
}

// ---------------------------------------------------------------------------------------------
// A file-drop folder: files matching the pattern, their count and the oldest modification time.

type GlobToken = { t: 'star' } | { t: 'one' } | { t: 'lit'; c: string } | { t: 'class'; negate: boolean; ranges: [string, string][] };

/**
 * A glob over a file name: `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`; everything else literal. Matched
 * without regular expressions, in time proportional to name × pattern at worst (a RegExp from
 * `*_*_*_*.edi` backtracks for seconds on a hostile name, synchronously); never throws (a
 * reversed range such as `[9-0]` matches nothing).
 */
export function globMatcher(glob: string): (name: string) => boolean {
  const tokens: GlobToken[] = [];
  const chars = [...glob];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === '*') {
      if (tokens[tokens.length - 1]?.t !== 'star') tokens.push({ t: 'star' });
    } else if (c === '?') tokens.push({ t: 'one' });
    else if (c === '[') {
      let j = i + 1;
      const negate = chars[j] === '!';
      if (negate) j++;
      const ranges: [string, string][] = [];
      // A "]" right after "[" or "[!" is a member, as in POSIX globs.
      let first = true;
      while (j < chars.length && (chars[j] !== ']' || first)) {
        const lo = chars[j] as string;
        if (chars[j + 1] === '-' && j + 2 < chars.length && chars[j + 2] !== ']') {
          ranges.push([lo, chars[j + 2] as string]);
          j += 3;
        } else {
          ranges.push([lo, lo]);
          j++;
        }
        first = false;
      }
      if (j >= chars.length) tokens.push({ t: 'lit', c: '[' });
      else {
        tokens.push({ t: 'class', negate, ranges });
        i = j;
      }
    } else tokens.push({ t: 'lit', c });
  }
  const one = (tok: GlobToken, ch: string): boolean => {
    if (tok.t === 'one') return true;
    if (tok.t === 'lit') return tok.c === ch;
    if (tok.t === 'class') return tok.ranges.some(([lo, hi]) => ch >= lo && ch <= hi) !== tok.negate;
    return false;
  };
  return (name: string): boolean => {
    const n = [...name];
    // The classic wildcard walk: remember the last star and retry from one character further.
    let ti = 0;
    let ni = 0;
    let starAt = -1;
    let starName = 0;
    while (ni < n.length) {
      const tok = tokens[ti];
      if (tok && tok.t !== 'star' && one(tok, n[ni] as string)) {
        ti++;
        ni++;
      } else if (tok?.t === 'star') {
        starAt = ti++;
        starName = ni;
      } else if (starAt >= 0) {
        ti = starAt + 1;
        ni = ++starName;
      } else return false;
    }
    while (tokens[ti]?.t === 'star') ti++;
    return ti === tokens.length;
  };
}

/** Files whose identities a directory check remembers between runs; beyond, arrivals and removals come from the depth change. */
const DIRECTORY_NAME_LIMIT = 50_000;

/**
 * Names are read as bytes: a sender on Latin-1 or Windows code pages writes names that are not
 * UTF-8, and decoded they could no longer be found to stat (and would go uncounted).
 */
async function readDirectory(sc: SourceContext<SourceOptions<'directory'>>): Promise<SourceReading[]> {
  // A folder on a hung network mount blocks in the file system, where no abort reaches; a run
  // does not start another read while the last one still hangs (each would hold a libuv thread).
  if (sc.memory.get(DIRECTORY_PENDING) === true)
    throw new SourceError('timeout', 'the previous read of the folder has still not finished (a hung network mount?): not starting another');
  sc.memory.set(DIRECTORY_PENDING, true);
  try {
    return await walkDirectory(sc);
  } finally {
    sc.memory.delete(DIRECTORY_PENDING);
  }
}

const DIRECTORY_PENDING = 'queue.directory-pending';

async function walkDirectory(sc: SourceContext<SourceOptions<'directory'>>): Promise<SourceReading[]> {
  const { o } = sc;
  const { signal } = sc.budget;
  const match = globMatcher(o.pattern);
  const names = new Set<string>();
  let depth = 0;
  let oldest = Infinity;
  let capped = false;
  let entries = 0;
  const root = Buffer.from(sc.target);
  const slash = Buffer.from('/');
  const folders: Buffer[] = [root];
  while (folders.length > 0 && !capped) {
    const folder = folders.shift() as Buffer;
    const shown = folder.toString('utf8');
    let dir: Awaited<ReturnType<typeof opendir>>;
    try {
      // 'buffer' is accepted at run time (names come back as Buffers); the typings list text encodings only.
      dir = await opendir(folder, { bufferSize: 256, encoding: 'buffer' as BufferEncoding });
    } catch (err) {
      if (folder !== root) continue; // a sub-folder removed while reading
      const code = (err as { code?: string }).code;
      if (code === 'ENOENT') throw new SourceError('queue_missing', `folder ${shown} does not exist`);
      if (code === 'EACCES' || code === 'EPERM') throw new SourceError('auth', `folder ${shown}: permission denied`);
      if (code === 'ENOTDIR') throw new SourceError('queue_missing', `${shown} is not a folder`);
      throw new SourceError('protocol', `folder ${shown}: ${describeError(err)}`);
    }
    try {
      for await (const e of dir) {
        if (signal.aborted) throw new SourceError('timeout', `reading ${shown} took longer than the check's timeout (${entries} entries read)`);
        if (++entries > o.maxFiles) {
          capped = true;
          break;
        }
        const raw = e.name as unknown as Buffer;
        const path = Buffer.concat([folder, ...(folder[folder.length - 1] === 0x2f ? [] : [slash]), raw]);
        if (e.isDirectory()) {
          if (o.recursive) folders.push(path);
          continue;
        }
        if (!e.isFile() || !match(raw.toString('utf8'))) continue;
        let st: Awaited<ReturnType<typeof stat>>;
        try {
          st = await stat(path);
        } catch {
          continue; // picked up between listing and stat: it drained
        }
        depth++;
        // When the file landed: a copy that keeps its old mtime (rsync -t, SFTP) still gets a new ctime.
        const landed = Math.max(st.mtimeMs, st.ctimeMs);
        if (landed < oldest) oldest = landed;
        // A file is the same file while its path and inode are: rewriting it in place is neither an
        // arrival nor a removal. latin1 maps the path's bytes one to one.
        if (names.size < DIRECTORY_NAME_LIMIT) names.add(`${path.toString('latin1')}\0${st.ino}`);
      }
    } finally {
      await dir.close().catch(() => undefined);
    }
  }
  return [
    reading({
      queue: sc.target,
      depth,
      oldestAgeSeconds: depth > 0 ? Math.max(0, (Date.now() - oldest) / 1000) : undefined,
      names: capped || depth > DIRECTORY_NAME_LIMIT ? undefined : names,
      partial: capped ? `stopped counting at maxFiles (${o.maxFiles}); depth is at least ${depth}` : undefined,
    }),
  ];
}
