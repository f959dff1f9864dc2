// Shared machinery for the system tests: running commands, firewall rules on loopback, network
// namespaces with a veth link, link delay, peers started inside a namespace, and unbound
// resolvers started by the test itself (not the system service).
// The system tests run as root and change the machine's network. Everything they add is tagged
// (iptables comment `vakt-test-<pid>`, namespace `vakt-t<pid>`, unbound directory
// `$TMPDIR/vakt-test-<pid>-unbound-*`) so it can be removed afterwards, and leftovers of an
// earlier, killed run are removed before a new run starts. Nothing here skips: a missing
// permission or tool is an error that names the command which failed.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command to completion without a shell and returns its output, whatever its exit status. */
export function tryRun(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        // Not an exit status: the command could not be started (ENOENT) or was killed (timeout).
        reject(new Error(`${describe(cmd, args)}: ${err.message}${err.killed ? ` (killed after ${timeoutMs}ms)` : ''}`));
        return;
      }
      resolve({ stdout, stderr, code: err ? (err.code as number) : 0 });
    });
  });
}

/** Runs a command and fails with its stderr unless it exits 0. */
export async function run(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  const r = await tryRun(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${describe(cmd, args)} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

function describe(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

/** The system tests change the machine's firewall and network; without root that is impossible. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the system tests must run as root (they add iptables rules, network namespaces and qdiscs)');
  }
}

function processAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

// ---------------------------------------------------------------------------------------------
// iptables

/** The comment that tags every rule this process adds. */
export const RULE_TAG = `vakt-test-${process.pid}`;
const TAG_RE = /vakt-test-(\d+)/;

/** Rules added by this process (IPv4 filter table), removed again by removeAll(). */
export class IptablesRules {
  private readonly added: { chain: string; spec: string[] }[] = [];

  constructor(private readonly netns?: string) {}

  /**
   * Inserts a rule at the top of `chain`, so it wins over whatever the machine already has.
   * `spec` is the rule without the chain, e.g. ['-i', 'lo', '-p', 'tcp', '--dport', '80', '-j', 'DROP'];
   * the tag comment is added before the target.
   */
  async add(chain: string, spec: readonly string[]): Promise<void> {
    const j = spec.indexOf('-j');
    const match = j < 0 ? [...spec] : spec.slice(0, j);
    const target = j < 0 ? [] : spec.slice(j);
    const full = [...match, '-m', 'comment', '--comment', RULE_TAG, ...target];
    await iptables(this.netns, ['-w', '-I', chain, ...full]);
    this.added.push({ chain, spec: full });
  }

  /** Removes every rule this object added; keeps going on errors and reports them all at the end. */
  async removeAll(): Promise<void> {
    const errors: string[] = [];
    while (this.added.length > 0) {
      const rule = this.added.pop()!;
      const r = await iptablesTry(this.netns, ['-w', '-D', rule.chain, ...rule.spec]);
      if (r.code !== 0) errors.push(r.stderr.trim());
    }
    if (errors.length > 0) throw new Error(`removing iptables rules failed: ${errors.join('; ')}`);
  }
}

function iptables(netns: string | undefined, args: string[]): Promise<string> {
  return netns ? run('ip', ['netns', 'exec', netns, 'iptables', ...args]) : run('iptables', args);
}

function iptablesTry(netns: string | undefined, args: string[]): Promise<CommandResult> {
  return netns ? tryRun('ip', ['netns', 'exec', netns, 'iptables', ...args]) : tryRun('iptables', args);
}

/**
 * Removes rules tagged by an earlier test process that is gone (killed before its cleanup ran).
 * Rules of a test process that is still running are left alone. Returns how many were removed.
 */
export async function removeStaleRules(): Promise<number> {
  const listing = await run('iptables', ['-w', '-S']);
  let removed = 0;
  for (const line of listing.split('\n')) {
    const m = TAG_RE.exec(line);
    if (!m || !line.startsWith('-A ')) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && processAlive(pid)) continue;
    // `iptables -S` prints each rule as the arguments that recreate it; -A becomes -D.
    const args = line
      .slice(3)
      .split(/\s+/)
      .map((a) => a.replace(/^"(.*)"$/, '$1'));
    await run('iptables', ['-w', '-D', ...args]);
    removed++;
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// network namespaces

export interface NetnsLink {
  /** Namespace name (`vakt-t<pid>`). */
  netns: string;
  /** The veth end in the host namespace and its address. */
  hostIf: string;
  hostAddr: string;
  /** The veth end inside the namespace and its address. */
  nsIf: string;
  nsAddr: string;
}

const NETNS_RE = /^vakt-t(\d+)(x\d+)?$/;

/**
 * Creates a namespace joined to the host by a veth pair with a /30 from 10.231.0.0/16, a range
 * vakt's tests own. `index` tells several namespaces of one process apart.
 */
export async function createNetnsLink(index = 0): Promise<NetnsLink> {
  const id = index === 0 ? `${process.pid}` : `${process.pid}x${index}`;
  const netns = `vakt-t${id}`;
  // veth names are limited to 15 characters ("vkh" + 7-digit pid + "x" + index fits).
  const hostIf = `vkh${id}`;
  const nsIf = `vkn${id}`;
  const octet = (process.pid + index) % 250;
  const subnet = `10.231.${octet}`;
  const link: NetnsLink = { netns, hostIf, hostAddr: `${subnet}.1`, nsIf, nsAddr: `${subnet}.2` };

  const inUse = await run('ip', ['-4', '-o', 'addr', 'show', 'to', `${subnet}.0/30`]);
  if (inUse.trim() !== '') throw new Error(`${subnet}.0/30 is already assigned on this machine:\n${inUse}`);

  try {
    await run('ip', ['netns', 'add', netns]);
    await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await run('ip', ['link', 'set', nsIf, 'netns', netns]);
    await run('ip', ['addr', 'add', `${link.hostAddr}/30`, 'dev', hostIf]);
    await run('ip', ['link', 'set', hostIf, 'up']);
    await inNetns(netns, 'ip', ['addr', 'add', `${link.nsAddr}/30`, 'dev', nsIf]);
    await inNetns(netns, 'ip', ['link', 'set', nsIf, 'up']);
    await inNetns(netns, 'ip', ['link', 'set', 'lo', 'up']);
  } catch (err) {
    await destroyNetnsLink(link).catch(() => undefined);
    throw err;
  }
  return link;
}

/** Runs a command inside a namespace. */
export function inNetns(netns: string, cmd: string, args: readonly string[]): Promise<string> {
  return run('ip', ['netns', 'exec', netns, cmd, ...args]);
}

/**
 * Removes a namespace, the processes left in it and the host end of its veth pair. Idempotent:
 * safe on a half-built link and when called twice.
 */
export async function destroyNetnsLink(link: Pick<NetnsLink, 'netns' | 'hostIf'>): Promise<void> {
  await killNetnsProcesses(link.netns);
  const errors: string[] = [];
  const del = await tryRun('ip', ['netns', 'del', link.netns]);
  if (del.code !== 0 && !/No such file|not found/i.test(del.stderr)) errors.push(del.stderr.trim());
  // Deleting the namespace destroys its veth end and with it the pair; delete the host end too in
  // case the peer never reached the namespace.
  const delLink = await tryRun('ip', ['link', 'del', link.hostIf]);
  if (delLink.code !== 0 && !/Cannot find device|does not exist/i.test(delLink.stderr)) errors.push(delLink.stderr.trim());
  if (errors.length > 0) throw new Error(`removing namespace ${link.netns} failed: ${errors.join('; ')}`);
}

/** Kills the processes still running in a namespace this test process created. */
async function killNetnsProcesses(netns: string): Promise<void> {
  const r = await tryRun('ip', ['netns', 'pids', netns]);
  if (r.code !== 0) return;
  for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Removes namespaces (and their veth) left behind by earlier test processes that are gone. */
export async function removeStaleNetns(): Promise<number> {
  const listing = await run('ip', ['netns', 'list']);
  let removed = 0;
  for (const line of listing.split('\n')) {
    const name = line.split(/\s+/)[0] ?? '';
    const m = NETNS_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && processAlive(pid)) continue;
    await destroyNetnsLink({ netns: name, hostIf: `vkh${name.slice('vakt-t'.length)}` });
    removed++;
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// link delay

export interface LinkDelay {
  /** How the delay is made: the netem qdisc, or a userspace NFQUEUE delay line where the kernel lacks netem. */
  mechanism: 'netem' | 'nfqueue';
  remove(): Promise<void>;
}

/**
 * Delays every packet from the host to the namespace by `ms`.
 * The normal way is `tc qdisc add dev <hostIf> root netem delay <ms>ms`. Some kernels (minimal VM
 * kernels, e.g. Firecracker guests) are built without CONFIG_NET_SCH_NETEM; there the delay is made
 * by queueing the packets entering the namespace to userspace (iptables NFQUEUE) and accepting
 * each one `ms` later. The packets still cross the real veth and TCP stack; only the holding
 * differs. `port` limits the NFQUEUE variant to one TCP port.
 */
export async function delayLink(link: NetnsLink, ms: number, port: number): Promise<LinkDelay> {
  const tc = await tryRun('tc', ['qdisc', 'add', 'dev', link.hostIf, 'root', 'netem', 'delay', `${ms}ms`]);
  if (tc.code === 0) {
    return {
      mechanism: 'netem',
      remove: async () => {
        await run('tc', ['qdisc', 'del', 'dev', link.hostIf, 'root']);
      },
    };
  }
  if (!/qdisc kind is unknown|Unknown qdisc|not supported/i.test(tc.stderr)) {
    throw new Error(`tc qdisc add dev ${link.hostIf} root netem delay ${ms}ms exited ${tc.code}: ${tc.stderr.trim()}`);
  }
  const queue = 7;
  const line = spawnInNetns(link.netns, 'python3', ['-c', NFQUEUE_DELAY_LINE, String(queue), String(ms)]);
  try {
    await waitForLine(line, /^ready$/, 10_000);
    const rules = new IptablesRules(link.netns);
    await rules.add('INPUT', ['-i', link.nsIf, '-p', 'tcp', '--dport', String(port), '-j', 'NFQUEUE', '--queue-num', String(queue)]);
    return {
      mechanism: 'nfqueue',
      remove: async () => {
        await rules.removeAll();
        line.kill('SIGKILL');
      },
    };
  } catch (err) {
    line.kill('SIGKILL');
    throw err;
  }
}

/**
 * Delays by `ms` the IPv4 packets that `match` picks in `chain` of namespace `netns`, through the
 * same user-space NFQUEUE delay line as delayLink (no netem needed): for paths delayLink's one
 * INPUT rule does not fit, such as traffic a namespace forwards (chain FORWARD, match
 * ['-i', dev, '-p', 'tcp', '--dport', '443']). The rule is inserted at the top of the chain; a
 * rule inserted after it is seen first. `queue` tells several delay lines in one namespace apart.
 */
export async function delayPackets(netns: string, chain: string, match: readonly string[], ms: number, queue = 7): Promise<LinkDelay> {
  const line = spawnInNetns(netns, 'python3', ['-c', NFQUEUE_DELAY_LINE, String(queue), String(ms)]);
  try {
    await waitForLine(line, /^ready$/, 10_000);
    const rules = new IptablesRules(netns);
    await rules.add(chain, [...match, '-j', 'NFQUEUE', '--queue-num', String(queue)]);
    return {
      mechanism: 'nfqueue',
      remove: async () => {
        await rules.removeAll();
        line.kill('SIGKILL');
      },
    };
  } catch (err) {
    line.kill('SIGKILL');
    throw err;
  }
}

/**
 * Delays every TCP packet to `port` that arrives at namespace `netns` over interface `dev` by `ms`
 * (delayPackets on INPUT): for a link between two namespaces, e.g. an application's link to its
 * directory. A packet still held when the delay is removed is dropped (and retransmitted by TCP).
 */
export function delayIncoming(netns: string, dev: string, ms: number, port: number, queue = 7): Promise<LinkDelay> {
  return delayPackets(netns, 'INPUT', ['-i', dev, '-p', 'tcp', '--dport', String(port)], ms, queue);
}

/**
 * A delay line on an NFQUEUE queue, in plain Python (no libnetfilter_queue): binds the queue over
 * nfnetlink, and gives each queued packet an ACCEPT verdict `delay` ms after it arrived.
 * argv: queue number, delay in ms. Prints "ready" once the queue is bound.
 */
const NFQUEUE_DELAY_LINE = String.raw`
import heapq, select, socket, struct, sys, time
NETLINK_NETFILTER, SUBSYS_QUEUE = 12, 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
NLMSG_ERROR, NLM_F_REQUEST, NLM_F_ACK = 2, 1, 4
queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.bind((0, 0))
seq = 0
def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack('=HH', n, kind) + payload + b'\0' * (-n % 4)
def send(msg, attrs, ack):
    global seq
    seq += 1
    body = struct.pack('!BBH', socket.AF_UNSPEC, 0, queue) + b''.join(attrs)
    flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
    s.send(struct.pack('=IHHII', 16 + len(body), (SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body)
    if ack:
        data = s.recv(65536)
        kind = struct.unpack_from('=H', data, 4)[0]
        err = struct.unpack_from('=i', data, 16)[0] if kind == NLMSG_ERROR else 0
        if err != 0:
            sys.exit('nfqueue: config message %d failed with errno %d' % (msg, -err))
send(MSG_CONFIG, [attr(1, struct.pack('!BxH', 1, socket.AF_INET))], True)   # CFG_CMD BIND
send(MSG_CONFIG, [attr(2, struct.pack('!IB', 0, 1))], True)                 # CFG_PARAMS copy meta only
print('ready', flush=True)
pending = []
while True:
    wait = max(0.0, pending[0][0] - time.monotonic()) if pending else None
    if select.select([s], [], [], wait)[0]:
        data = s.recv(1 << 20)
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from('=IH', data, off)
            if length < 16:
                break
            if kind == (SUBSYS_QUEUE << 8) | MSG_PACKET:
                a = off + 20
                while a + 4 <= off + length:
                    alen, akind = struct.unpack_from('=HH', data, a)
                    if alen < 4:
                        break
                    if akind & 0x3fff == 1:   # PACKET_HDR: packet id first
                        heapq.heappush(pending, (time.monotonic() + delay, struct.unpack_from('!I', data, a + 4)[0]))
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3
    now = time.monotonic()
    while pending and pending[0][0] <= now:
        packet_id = heapq.heappop(pending)[1]
        send(MSG_VERDICT, [attr(2, struct.pack('!II', 1, packet_id))], False)   # NF_ACCEPT
`;

// ---------------------------------------------------------------------------------------------
// processes

/** Starts a long-running process inside a namespace (stdout piped, stderr collected for errors). */
/**
 * A slow path on loopback: a TCP proxy to `upstreamPort` that holds each chunk going one way for
 * `delayMs` (in order) — `up` the client's bytes (a slow server, as the client sees it), `down`
 * the server's; the other way is passed at once. When the side whose bytes are held closes, the other one is closed after
 * the held bytes went through.
 */
export async function delayingProxy(
  upstreamPort: number,
  delayMs: number,
  options: { direction: 'up' | 'down' },
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = netConnect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const [from, to] = options.direction === 'up' ? [client, upstream] : [upstream, client];
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    from.on('data', (chunk: Buffer) => setTimeout(() => to.write(chunk), delayMs));
    to.pipe(from);
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', () => {
        sockets.delete(s);
        setTimeout(end, s === from ? delayMs + 10 : 0);
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A spawned daemon's output so far, whether (and how) it exited, and a spawn failure to await while starting. */
export function watchDaemon(
  child: ChildProcess,
  live: Set<ChildProcess>,
): { output: () => string; exited: () => { code: number | null; signal: NodeJS.Signals | null } | undefined; exit: Promise<void>; spawnError: Promise<never> } {
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  const spawnError = new Promise<never>((_resolve, reject) => child.once('error', reject));
  spawnError.catch(() => undefined); // awaited only while starting; later errors show as the exit
  live.add(child);
  void exit.then(() => live.delete(child));
  return { output: () => output, exited: () => exited, exit, spawnError };
}

export function spawnInNetns(netns: string, cmd: string, args: readonly string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', netns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves with the first stdout line matching `re`; rejects if the process exits or time runs out first. */
/** Polls `fn` every `everyMs` until it gives a value (not undefined or false); fails after `ms`, naming `what`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms: number, everyMs = 50): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const finish = (e?: Error, line?: string) => {
      clearTimeout(timer);
      child.stdout?.removeListener('data', onOut);
      child.stderr?.removeListener('data', onErr);
      child.removeListener('exit', onExit);
      if (e) reject(e);
      else resolve(line!);
    };
    const onOut = (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => re.test(l.trim()));
      if (line !== undefined) finish(undefined, line.trim());
    };
    const onErr = (d: Buffer) => (err += d.toString());
    const onExit = (code: number | null) => finish(new Error(`process exited (${code}) before printing ${re}: ${err.trim() || out.trim()}`));
    const timer = setTimeout(() => finish(new Error(`no line matching ${re} within ${timeoutMs}ms; stdout: ${out.trim()} stderr: ${err.trim()}`)), timeoutMs);
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

/**
 * A TCP listener in Python inside a namespace: accepts and closes every connection.
 * Resolves with the process and the port it bound.
 */
export async function startNetnsListener(netns: string, address: string): Promise<{ process: ChildProcess; port: number }> {
  const script = [
    'import socket, sys',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    's.bind((sys.argv[1], 0))',
    's.listen(128)',
    'print(s.getsockname()[1], flush=True)',
    'while True:',
    '    c, _ = s.accept()',
    '    c.close()',
  ].join('\n');
  const child = spawnInNetns(netns, 'python3', ['-c', script, address]);
  try {
    const line = await waitForLine(child, /^\d+$/, 10_000);
    return { process: child, port: Number(line) };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// unbound

/** What an unbound instance serves: `server:` statements and forward zones. */
export interface UnboundSetup {
  /**
   * Extra `server:` statements, one complete statement per entry, e.g.
   * `local-zone: "region.test." static` or `local-data: "cosmic.region.test. 300 IN A 10.20.1.5"`.
   */
  server: readonly string[];
  /** Forward zones: queries under `name` go to `addr` ("127.0.0.1@5353"). */
  forwardZones?: readonly { name: string; addr: string }[];
  /**
   * Run in this network namespace, answering on `address` port 53 (a resolver as clients meet
   * it), instead of on a free port of the host's 127.0.0.1.
   */
  netns?: { name: string; address: string };
}

export interface UnboundInstance {
  /** The port unbound answers on, UDP and TCP, on 127.0.0.1 (or the namespace's address). */
  port: number;
  /** "127.0.0.1:<port>" (or "<address>:53"), a dns check's target. */
  target: string;
  pid: number;
  /** Its temporary directory (configuration, pid file, log). */
  dir: string;
  /**
   * A port on 127.0.0.1 where nothing listens: every instance forwards the root zone there, so
   * a query outside its local data never leaves the machine (it fails with SERVFAIL instead).
   */
  deadPort: number;
  /** unbound's log and stderr so far, for failure messages. */
  log(): string;
  /** True while the process runs. */
  running(): boolean;
  /** Sends `signal` (SIGTERM by default), waits for the exit (SIGKILL after 5 s), removes the directory. Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const UNBOUND_DIR_PREFIX = `vakt-test-${process.pid}-unbound-`;
const UNBOUND_DIR_RE = /^vakt-test-(\d+)-unbound-/;

/** unbound processes this process started and that still run: killed if it exits without stopping them. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/**
 * A port on 127.0.0.1 that is free for both UDP and TCP right now (nothing bound to it).
 * Used for servers about to start and as a closed port that refuses.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const tcp = createNetServer();
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as AddressInfo).port));
    });
    const udp = createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (udpFree) return port;
  }
  throw new Error('no port on 127.0.0.1 free for both UDP and TCP in 20 attempts');
}

/** Fails with a plain message when a program the system tests need is not installed. */
export async function requireTool(cmd: string, args: readonly string[], pkg: string): Promise<string> {
  try {
    const r = await tryRun(cmd, args);
    return `${r.stdout}${r.stderr}`;
  } catch (err) {
    throw new Error(`${cmd} is not installed (apt-get install ${pkg}; .ci/run installs it): ${(err as Error).message}`);
  }
}

function unboundConf(dir: string, port: number, deadPort: number, setup: UnboundSetup): string {
  const address = setup.netns?.address ?? '127.0.0.1';
  const q = (s: string) => `"${s}"`;
  const lines = [
    'server:',
    '  do-daemonize: no',
    '  chroot: ""',
    '  username: ""',
    `  directory: ${q(dir)}`,
    `  pidfile: ${q(join(dir, 'unbound.pid'))}`,
    '  use-syslog: no',
    `  logfile: ${q(join(dir, 'unbound.log'))}`,
    '  verbosity: 1',
    `  interface: ${address}`,
    `  port: ${port}`,
    '  do-ip6: no',
    '  access-control: 127.0.0.0/8 allow',
    ...(setup.netns ? ['  access-control: 10.0.0.0/8 allow'] : []),
    // Iterator only: no validator, so no trust anchor (and no auto-trust-anchor-file) is needed.
    '  module-config: "iterator"',
    // The forwarders below are on 127.0.0.1, which unbound refuses to query by default.
    '  do-not-query-localhost: no',
    // "test." is one of unbound's default local zones (RFC 6761, always NXDOMAIN); without this
    // a forward zone under it would never be consulted.
    '  local-zone: "test." nodefault',
    // A forwarder that refuses (ICMP port unreachable) counts as a timeout to unbound, which by
    // default retries with a doubling timeout (up to 2 minutes) and gives no answer for well
    // over 30 s. One retry and a 1 s ceiling bring SERVFAIL after 0.76 s on the first query,
    // 1.5 s on the second (the RTT estimate doubled) and at once from then on (the host is
    // cached as down); measured with unbound 1.17.1.
    '  outbound-msg-retry: 1',
    '  infra-cache-max-rtt: 1000',
    ...setup.server.map((s) => `  ${s}`),
    'remote-control:',
    '  control-enable: no',
  ];
  // Everything not local is forwarded to a port where nothing listens: nothing leaves the machine.
  for (const z of [...(setup.forwardZones ?? []), { name: '.', addr: `127.0.0.1@${deadPort}` }]) {
    lines.push('forward-zone:', `  name: ${q(z.name)}`, `  forward-addr: ${z.addr}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Starts unbound in the foreground (`unbound -d -c <conf>`) as a child of this process, on a free
 * port of 127.0.0.1, with its own configuration, pid file and log in a temporary directory
 * (checked with unbound-checkconf first). Resolves once it answers a query (dig, `localhost. A`,
 * one of unbound's built-in local zones). Fails, never skips, when unbound or dig is missing.
 */
export async function startUnbound(setup: UnboundSetup): Promise<UnboundInstance> {
  await requireTool('unbound', ['-V'], 'unbound');
  await requireTool('dig', ['-v'], 'dnsutils');
  let lastError: Error | undefined;
  // A port found free may be taken before unbound binds it; then try another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), UNBOUND_DIR_PREFIX));
    try {
      return await startUnboundIn(dir, setup);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      lastError = err as Error;
      if (!/Address already in use|can't bind socket/i.test(lastError.message)) throw lastError;
    }
  }
  throw lastError!;
}

async function startUnboundIn(dir: string, setup: UnboundSetup): Promise<UnboundInstance> {
  const port = setup.netns ? 53 : await freePort();
  let deadPort = await freePort();
  while (deadPort === port) deadPort = await freePort();
  const address = setup.netns?.address ?? '127.0.0.1';
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, unboundConf(dir, port, deadPort, setup));
  await run('unbound-checkconf', [conf]);

  const child = setup.netns
    ? spawnInNetns(setup.netns.name, 'unbound', ['-d', '-c', conf])
    : spawn('unbound', ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { output, exited, exit, spawnError } = watchDaemon(child, liveChildren);
  const logFile = join(dir, 'unbound.log');
  const log = () => `${output()}${existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''}`.trim();

  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    (stopping ??= (async () => {
      if (!exited()) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })());

  const instance: UnboundInstance = { port, target: `${address}:${port}`, pid: child.pid ?? -1, dir, deadPort, log, running: () => !exited(), stop };
  try {
    const deadline = performance.now() + 10_000;
    for (;;) {
      await Promise.race([spawnError, new Promise((r) => setTimeout(r, 50))]);
      const gone = exited();
      if (gone) throw new Error(`unbound exited (${gone.code ?? gone.signal}) before answering: ${log()}`);
      const dig = ['dig', `@${address}`, '-p', String(port), '+tries=1', '+time=1', '+short', 'localhost.', 'A'];
      const r = setup.netns ? await tryRun('ip', ['netns', 'exec', setup.netns.name, ...dig]) : await tryRun(dig[0]!, dig.slice(1));
      if (r.code === 0 && r.stdout.trim() === '127.0.0.1') return instance;
      if (performance.now() > deadline) throw new Error(`unbound on port ${port} did not answer within 10 s: ${log()}`);
    }
  } catch (err) {
    await stop('SIGKILL').catch(() => undefined);
    throw err;
  }
}

/**
 * Kills unbound processes left by an earlier test process that is gone (killed before its
 * cleanup ran) and removes their directories. Only a process whose command line names the
 * configuration file in such a directory is killed. Returns how many were killed.
 */
export function removeStaleUnbound(): number {
  let killed = 0;
  for (const name of readdirSync(tmpdir())) {
    const m = UNBOUND_DIR_RE.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || processAlive(owner)) continue;
    const dir = join(tmpdir(), name);
    const pidFile = join(dir, 'unbound.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        if (cmdline.includes(join(dir, 'unbound.conf'))) {
          process.kill(pid, 'SIGKILL');
          killed++;
        }
      } catch {
        // gone in the meantime
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return killed;
}

/** A Prometheus a test started (startPrometheus). */
export interface PrometheusProcess {
  url: string;
  /** Its folder: prometheus.yml and data/. */
  dir: string;
  /** What it printed so far. */
  log(): string;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and removes its folder. */
  stop(): Promise<void>;
}

const PROM_DIR_PREFIX = `vakt-test-${process.pid}-prometheus-`;
const PROM_DIR_RE = /^vakt-test-(\d+)-prometheus-/;

/**
 * Kills a Prometheus left by an earlier test process that is gone (killed before its cleanup
 * ran) and removes its directory. Only a process whose command line names the configuration file
 * in such a directory is killed.
 */
function removeStalePrometheus(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = PROM_DIR_RE.exec(name);
    if (!m || Number(m[1]) === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    const dir = join(tmpdir(), name);
    const arg = `--config.file=${join(dir, 'prometheus.yml')}`;
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(arg)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile, or not ours to read
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts a real Prometheus (Debian `prometheus`) on a free port of 127.0.0.1 with `config` as its
 * prometheus.yml, and waits until it is ready. A port found free may be taken before Prometheus
 * binds it; then another is tried.
 */
export async function startPrometheus(config: string, extraArgs: readonly string[] = []): Promise<PrometheusProcess> {
  await requireTool('prometheus', ['--version'], 'prometheus');
  removeStalePrometheus();
  const dir = mkdtempSync(join(tmpdir(), PROM_DIR_PREFIX));
  const conf = join(dir, 'prometheus.yml');
  writeFileSync(conf, config);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let log = '';
    const child = spawn(
      'prometheus',
      [
        `--config.file=${conf}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
        '--storage.tsdb.retention.time=1h',
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        const exit = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    };
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        'Prometheus ready',
        async () => {
          if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
          return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
        },
        30_000,
      );
      return { url, dir, log: () => log, stop };
    } catch (err) {
      if (child.exitCode === null) child.kill('SIGKILL');
      if (attempt >= 2 || !/address already in use/i.test(log)) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}
