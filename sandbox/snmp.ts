// The sandbox's SNMP agent: firewall member fw-a's management interface on loopback (UDP), for
// `vakt demo` and the tests of the snmp kind. net-snmp's own agent answers v2c (community from
// sandbox/secrets/snmp-community) and v3 (user vakt-monitor, SHA/AES, keys from
// sandbox/secrets/snmp-auth-key and snmp-priv-key) for:
//   1.3.6.1.2.1.1.5.0            sysName: "fw-a"
//   1.3.6.1.4.1.99999.1.1.0      the member's HA state (1 active, 2 standby)
//   1.3.6.1.2.1.2.2.1.8.3        ifOperStatus of the uplink, interface 3 (1 up, 2 down)
// Fault switches (`mode`):
//   ok         active, uplink up
//   standby    the member went standby (its peer took over, or it failed over by itself)
//   linkdown   the uplink's oper status is down
//   silent     no answer at all (the agent hung, an ACL dropped us)
//   community  the agent's community changed: v2c requests are dropped without a word
//   nouser     the v3 user is gone (the device was reconfigured): a USM report, unknown user name
import { createSocket, type Socket, type SocketType } from 'node:dgram';
import snmp from 'net-snmp';

export const SNMP_MODES = ['ok', 'standby', 'linkdown', 'silent', 'community', 'nouser'] as const;
export type SnmpMode = (typeof SNMP_MODES)[number];

export const SANDBOX_SNMP_USER = 'vakt-monitor';
export const OIDS = { sysName: '1.3.6.1.2.1.1.5.0', haState: '1.3.6.1.4.1.99999.1.1.0', uplinkOper: '1.3.6.1.2.1.2.2.1.8.3' } as const;

export interface SnmpCredentials {
  community: string;
  authKey: string;
  privKey: string;
}

/** The part of net-snmp's agent the sandbox uses (its typings declare the agent as any). */
interface NetSnmpAgent {
  getMib(): {
    registerProvider(p: {
      name: string;
      type: number;
      oid: string;
      maxAccess: number;
      scalarType?: number;
      tableColumns?: { number: number; name: string; type: number; maxAccess: number }[];
      tableIndex?: { columnName: string }[];
    }): void;
    setScalarValue(name: string, value: number | string): void;
    addTableRow(name: string, row: (number | string)[]): void;
    setTableSingleCell(name: string, column: number, index: number[], value: number | string): void;
  };
  getAuthorizer(): {
    getCommunities(): string[];
    addCommunity(c: string): void;
    deleteCommunity(c: string): void;
    addUser(u: snmp.User): void;
    deleteUser(name: string): void;
  };
  close(cb: () => void): void;
}

export class SandboxSnmpAgent {
  mode: SnmpMode = 'ok';
  /** Requests received (answered or not) since the start. */
  requests = 0;
  private agent: NetSnmpAgent | undefined;
  private socket: Socket | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly credentials: SnmpCredentials,
  ) {}

  get address(): { host: string; port: number } {
    const a = this.socket?.address();
    return { host: this.host, port: a?.port ?? this.port };
  }

  async start(): Promise<void> {
    const heard = (): boolean => {
      this.requests++;
      return this.mode !== 'silent';
    };
    let socket: Socket | undefined;
    // net-snmp's agent binds through this: its 'message' listener only hears us when we are not silent.
    const dgramModule = {
      createSocket(type: SocketType) {
        const s = createSocket(type);
        const on = s.on.bind(s);
        Object.assign(s, {
          on: (event: string, listener: (...args: unknown[]) => void) =>
            event === 'message'
              ? on('message', (...args: unknown[]) => {
                  if (heard()) listener(...args);
                })
              : on(event, listener),
        });
        socket = s;
        return s;
      },
    };
    // Errors of a request (a wrong community, a bad digest) are the agent's to drop, not ours to report.
    const agent = snmp.createAgent(
      { port: this.port, address: this.host, transport: this.host.includes(':') ? 'udp6' : 'udp4', dgramModule },
      () => undefined,
    ) as NetSnmpAgent;
    const s = socket;
    if (!s) throw new Error('net-snmp created no socket');
    await new Promise<void>((resolve, reject) => {
      s.once('listening', () => resolve());
      s.once('error', reject);
    });
    this.socket = s;
    this.agent = agent;
    const mib = agent.getMib();
    const ro = snmp.MaxAccess['read-only'];
    mib.registerProvider({
      name: 'sysName',
      type: snmp.MibProviderType.Scalar,
      oid: '1.3.6.1.2.1.1.5',
      scalarType: snmp.ObjectType.OctetString,
      maxAccess: ro,
    });
    mib.registerProvider({
      name: 'haState',
      type: snmp.MibProviderType.Scalar,
      oid: '1.3.6.1.4.1.99999.1.1',
      scalarType: snmp.ObjectType.Integer,
      maxAccess: ro,
    });
    // The interface table (ifEntry) with the uplink's row, index 3: ifIndex and ifOperStatus.
    mib.registerProvider({
      name: 'ifTable',
      type: snmp.MibProviderType.Table,
      oid: '1.3.6.1.2.1.2.2.1',
      maxAccess: snmp.MaxAccess['not-accessible'],
      tableColumns: [
        { number: 1, name: 'ifIndex', type: snmp.ObjectType.Integer, maxAccess: ro },
        { number: 8, name: 'ifOperStatus', type: snmp.ObjectType.Integer, maxAccess: ro },
      ],
      tableIndex: [{ columnName: 'ifIndex' }],
    });
    mib.addTableRow('ifTable', [3, 1]);
    this.setMode('ok');
  }

  setMode(mode: SnmpMode): void {
    this.mode = mode;
    const agent = this.agent;
    if (!agent) return;
    const mib = agent.getMib();
    mib.setScalarValue('sysName', 'fw-a');
    mib.setScalarValue('haState', mode === 'standby' ? 2 : 1);
    mib.setTableSingleCell('ifTable', 8, [3], mode === 'linkdown' ? 2 : 1);
    const auth = agent.getAuthorizer();
    for (const c of [...auth.getCommunities()]) auth.deleteCommunity(c);
    auth.addCommunity(mode === 'community' ? 'changed-by-someone-else' : this.credentials.community);
    auth.deleteUser(SANDBOX_SNMP_USER);
    auth.deleteUser(`${SANDBOX_SNMP_USER}-new`);
    auth.addUser({
      name: mode === 'nouser' ? `${SANDBOX_SNMP_USER}-new` : SANDBOX_SNMP_USER,
      level: snmp.SecurityLevel.authPriv,
      authProtocol: snmp.AuthProtocols.sha,
      authKey: this.credentials.authKey,
      privProtocol: snmp.PrivProtocols.aes,
      privKey: this.credentials.privKey,
    });
  }

  async stop(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    this.socket = undefined;
    if (agent) await new Promise<void>((resolve) => agent.close(() => resolve()));
  }
}
