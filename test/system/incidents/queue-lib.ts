// The peers of the integration replay (queue.test.ts, incident 5): an HL7 v2 MLLP responder built
// on python-hl7's asyncio MLLP server (Debian's python3-hl7), whose answer is switched at run time
// (AA, AE, AR, or silent: it takes the message and never acknowledges), and the traffic of a
// RabbitMQ queue: a producer putting orders in at a steady rate and a consumer draining them, each
// its own Node process (amqplib) inside a network namespace, so stopping the consumer is a
// process that dies and a consumer the broker sees go.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForLine, watchDaemon } from '../helpers.js';
import { ROOT, type Cleanup } from './harness.js';

/** Debian's python3 (python3-hl7 is installed for it), not another python3 first on PATH. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Processes of this file that must not outlive the test process, even when it dies before afterAll. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** How the responder answers each message: an ACK with this MSA-1, or `silent` (no answer at all). */
export type Hl7Mode = 'AA' | 'AE' | 'AR' | 'silent';

const RESPONDER = String.raw`
import asyncio, sys
import hl7
from hl7.mllp import start_hl7_server

address, mode_file = sys.argv[1], sys.argv[2]

def mode():
    try:
        with open(mode_file) as f:
            return f.read().strip() or 'AA'
    except OSError:
        return 'AA'

async def session(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            m = mode()
            if m == 'silent':
                # The engine took the message and hangs: the connection stays open, no ACK.
                continue
            writer.writemessage(message.create_ack(ack_code=m, application='LAB', facility='HOSP'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await start_hl7_server(session, address, 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
`;

export interface Hl7Responder {
  port: number;
  /** Switches how every following message is answered. */
  setMode(mode: Hl7Mode): void;
  log(): string;
}

/** The MLLP responder in `netns`, listening on `address` (a free port); answers AA until told otherwise. */
export async function startHl7Responder(cleanup: Cleanup, netns: string, address: string, dir: string): Promise<Hl7Responder> {
  const modeFile = join(dir, 'hl7-mode');
  writeFileSync(modeFile, 'AA\n');
  const child = spawn('ip', ['netns', 'exec', netns, PYTHON, '-c', RESPONDER, address, modeFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const daemon = watchDaemon(child, live);
  cleanup.add('stop the MLLP responder', () => stopChild(child, daemon));
  const line = await waitForLine(child, /^\d+$/, 15_000).catch((err: Error) => {
    throw new Error(`MLLP responder (python3-hl7): ${err.message} ${daemon.output()}`);
  });
  return { port: Number(line), setMode: (mode) => writeFileSync(modeFile, `${mode}\n`), log: daemon.output };
}

const CLIENT = String.raw`
const amqp = require('amqplib');
const [role, url, queue, rate] = process.argv.slice(1);
(async () => {
  const conn = await amqp.connect(url);
  conn.on('error', (e) => { console.error(String(e)); process.exit(1); });
  conn.on('close', () => process.exit(1));
  const ch = await conn.createChannel();
  if (role === 'consumer') {
    await ch.prefetch(50);
    await ch.consume(queue, (m) => m && ch.ack(m), { noAck: false });
    console.log('consuming');
  } else {
    let n = 0;
    setInterval(() => {
      n++;
      ch.sendToQueue(queue, Buffer.from('MSH|^~\\&|EHR|HOSP|LAB|HOSP|||ORM^O01|ORD' + n + '|T|2.5\r'), {
        persistent: true,
        timestamp: Math.floor(Date.now() / 1000),
        messageId: 'order-' + n,
        contentType: 'x-application/hl7-v2+er7',
      });
    }, 1000 / Number(rate));
    console.log('producing');
  }
})().catch((e) => { console.error(String(e)); process.exit(1); });
`;

export interface QueueClient {
  /** Kills the process (SIGKILL): its connection drops, the broker removes its consumer. */
  stop(): Promise<void>;
  running(): boolean;
}

/**
 * A consumer (acks every message, prefetch 50) or a producer (`rate` messages a second, each with
 * the AMQP timestamp the queue probe reads the oldest message's age from) of `queue`, as its own
 * Node process in `netns`, connected to `url`. Resolves once it consumes or produces.
 */
export async function startQueueClient(
  cleanup: Cleanup,
  opts: { role: 'consumer' | 'producer'; netns: string; url: string; queue: string; rate?: number },
): Promise<QueueClient> {
  const child = spawn('ip', ['netns', 'exec', opts.netns, process.execPath, '-e', CLIENT, opts.role, opts.url, opts.queue, String(opts.rate ?? 0)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const daemon = watchDaemon(child, live);
  const stop = () => stopChild(child, daemon);
  cleanup.add(`stop the ${opts.role}`, stop);
  await waitForLine(child, /^(consuming|producing)$/, 20_000).catch((err: Error) => {
    throw new Error(`${opts.role}: ${err.message} ${daemon.output()}`);
  });
  return { stop, running: () => !daemon.exited() };
}

async function stopChild(child: ChildProcess, daemon: ReturnType<typeof watchDaemon>): Promise<void> {
  if (daemon.exited()) return;
  child.kill('SIGKILL');
  await daemon.exit;
}
