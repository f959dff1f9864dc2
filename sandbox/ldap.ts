// The sandbox's directory: a minimal LDAPv3 server (RFC 4511) on loopback, written on node:net
// with the small BER codec in ber.ts, so the demo has a directory login on any machine (OpenLDAP's
// slapd cannot be assumed). It answers what a directory login does and little more:
//   BindRequest     simple authentication by DN (or userPrincipalName, as Active Directory
//                   accepts); anonymous (empty DN and password) succeeds; a DN with an empty
//                   password (an unauthenticated bind) is unwillingToPerform; SASL is
//                   authMethodNotSupported. A refused bind is invalidCredentials (49) with Active
//                   Directory's diagnostic: `data 525` for an unknown user, `52e` for a wrong
//                   password (and the faults below).
//   SearchRequest   scopes base, one, sub and children; filters and, or, not, equality,
//                   substrings, >=, <=, present and approx (as equality), matched without regard
//                   to case; an extensible-match filter matches nothing. The root DSE (base "",
//                   scope base) names the naming context. sizeLimit is honoured (the result is
//                   then sizeLimitExceeded, as a real server answers). Searching needs no bind.
//   ExtendedRequest StartTLS upgrades the connection with the sandbox certificate (the one of
//                   the EHR front: ehr.sandbox.vakt.test, localhost, 127.0.0.1); any other
//                   extended operation is protocolError.
//   UnbindRequest   closes the connection; AbandonRequest is ignored.
//   Add, Delete, Modify, ModifyDN, Compare are unwillingToPerform (the directory is read-only).
// Anything that is not an LDAP message (bad BER, a message over MAX_MESSAGE bytes, an unknown
// operation) gets a Notice of Disconnection (protocolError) and the connection is closed: the
// server never crashes on input, and buffers per connection are bounded.
//
// The tree (base dc=region,dc=sandbox):
//   ou=people   uid=svc-vakt-probe (the probe account: password sandbox/secrets/probe-password)
//               and five staff accounts (which have no password: any bind as them is refused)
//   ou=groups   cn=vakt-probes (the probe account), cn=ward-7 (staff)
//
// Fault switches (`mode`):
//   ok       normal
//   slow     every bind is answered after `slowMs` (3 s by default); connecting and searching
//            stay fast: the Region Uppsala story, a slow domain controller
//   locked   every bind as a known user is refused: 49, `data 775` (account locked out)
//   expired  a bind as a known user with the right password is refused: 49, `data 532`
//            (password expired; a wrong password is still 52e, as Active Directory answers)
//   down     the directory stops listening: connections are refused
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { TcpService } from './tcp-service.js';
import { BerError, children, decodeBoolean, decodeInteger, encode, encodeInteger, encodeString, readElement, TAG, type BerElement } from './ber.js';

export const LDAP_MODES = ['ok', 'slow', 'locked', 'expired', 'down'] as const;
export type LdapMode = (typeof LDAP_MODES)[number];

/** How long a `slow` bind takes unless told otherwise. */
export const DEFAULT_LDAP_SLOW_MS = 3000;

export const SANDBOX_BASE_DN = 'dc=region,dc=sandbox';
export const SANDBOX_PEOPLE_DN = `ou=people,${SANDBOX_BASE_DN}`;

/** The largest LDAP message the server reads; a bigger one closes the connection. */
export const MAX_MESSAGE = 64 * 1024;
const MAX_CONNECTIONS = 128;
const IDLE_MS = 60_000;
/** Most entries one search returns, whatever its sizeLimit. */
const MAX_ENTRIES = 1000;
const MAX_FILTER_DEPTH = 16;

const OP = {
  bindRequest: 0x60,
  bindResponse: 0x61,
  unbindRequest: 0x42,
  searchRequest: 0x63,
  searchResultEntry: 0x64,
  searchResultDone: 0x65,
  abandonRequest: 0x50,
  extendedRequest: 0x77,
  extendedResponse: 0x78,
} as const;

/** Write operations (request tag → response tag), all refused. */
const READ_ONLY: Readonly<Record<number, number>> = { 0x66: 0x67, 0x68: 0x69, 0x4a: 0x6b, 0x6c: 0x6d, 0x6e: 0x6f };

const RESULT = {
  success: 0,
  operationsError: 1,
  protocolError: 2,
  sizeLimitExceeded: 4,
  authMethodNotSupported: 7,
  noSuchObject: 32,
  invalidCredentials: 49,
  unwillingToPerform: 53,
} as const;

const START_TLS = '1.3.6.1.4.1.1466.20037';
const NOTICE_OF_DISCONNECTION = '1.3.6.1.4.1.1466.20036';

/** Active Directory's diagnostic for a refused bind, with its `data` code. */
export function adDiagnostic(data: string): string {
  return `80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data ${data}, v3839`;
}

export interface Entry {
  dn: string;
  attributes: Record<string, string[]>;
}

/** A DN compared without regard to case or to spaces around `,` and `=`. */
export function normalizeDn(dn: string): string {
  return dn
    .split(',')
    .map((rdn) =>
      rdn
        .split('=')
        .map((p) => p.trim())
        .join('='),
    )
    .join(',')
    .toLowerCase();
}

function parentDn(norm: string): string | undefined {
  const i = norm.indexOf(',');
  return i < 0 ? undefined : norm.slice(i + 1);
}

/** The sandbox tree; the probe account's password is `probePassword`. */
export function sandboxEntries(probeUser: string, probePassword: string): Entry[] {
  const person = (uid: string, cn: string, title: string, extra: Record<string, string[]> = {}): Entry => {
    const [given = cn, sn = cn] = cn.split(' ');
    return {
      dn: `uid=${uid},${SANDBOX_PEOPLE_DN}`,
      attributes: {
        objectClass: ['top', 'person', 'organizationalPerson', 'inetOrgPerson'],
        uid: [uid],
        cn: [cn],
        givenName: [given],
        sn: [sn],
        title: [title],
        mail: [`${uid}@region.sandbox`],
        userPrincipalName: [`${uid}@region.sandbox`],
        ...extra,
      },
    };
  };
  return [
    { dn: SANDBOX_BASE_DN, attributes: { objectClass: ['top', 'domain'], dc: ['region'], description: ['Region Sandbox (vakt demo directory)'] } },
    { dn: SANDBOX_PEOPLE_DN, attributes: { objectClass: ['top', 'organizationalUnit'], ou: ['people'] } },
    { dn: `ou=groups,${SANDBOX_BASE_DN}`, attributes: { objectClass: ['top', 'organizationalUnit'], ou: ['groups'] } },
    person(probeUser, 'Vakt Probe', 'Monitoring test account', { userPassword: [probePassword] }),
    person('anna.berg', 'Anna Berg', 'Ward nurse'),
    person('erik.lund', 'Erik Lund', 'Physician'),
    person('karin.holm', 'Karin Holm', 'Physician'),
    person('lars.nyberg', 'Lars Nyberg', 'Radiographer'),
    person('maja.ek', 'Maja Ek', 'IT service desk'),
    {
      dn: `cn=vakt-probes,ou=groups,${SANDBOX_BASE_DN}`,
      attributes: { objectClass: ['top', 'groupOfNames'], cn: ['vakt-probes'], member: [`uid=${probeUser},${SANDBOX_PEOPLE_DN}`] },
    },
    {
      dn: `cn=ward-7,ou=groups,${SANDBOX_BASE_DN}`,
      attributes: {
        objectClass: ['top', 'groupOfNames'],
        cn: ['ward-7'],
        member: ['anna.berg', 'erik.lund', 'karin.holm'].map((u) => `uid=${u},${SANDBOX_PEOPLE_DN}`),
      },
    },
  ];
}

export interface DirectoryOptions {
  host: string;
  port: number;
  entries: Entry[];
  /** Key and certificate for StartTLS. */
  tls: { cert: Buffer; key: Buffer };
  slowMs?: number;
}

/** A parsed search filter. */
type Filter =
  | { op: 'and' | 'or'; items: Filter[] }
  | { op: 'not'; item: Filter }
  | { op: 'eq' | 'ge' | 'le'; attr: string; value: string }
  | { op: 'sub'; attr: string; initial?: string; any: string[]; final?: string }
  | { op: 'present'; attr: string }
  | { op: 'never' };

export class SandboxDirectory extends TcpService<LdapMode> {
  slowMs: number;
  /** Connections accepted since start (tests). */
  connections = 0;
  private readonly byDn = new Map<string, Entry>();
  private readonly secureContext: SecureContext;

  constructor(private readonly options: DirectoryOptions) {
    super(options.host, options.port, 'ok', MAX_CONNECTIONS);
    this.slowMs = options.slowMs ?? DEFAULT_LDAP_SLOW_MS;
    for (const e of options.entries) this.byDn.set(normalizeDn(e.dn), e);
    this.secureContext = createSecureContext({ cert: options.tls.cert, key: options.tls.key });
  }

  /** ldap://host:port */
  get url(): string {
    const h = this.options.host;
    return `ldap://${h.includes(':') ? `[${h}]` : h}:${this.port}`;
  }

  protected serve(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    let out: Socket = socket;
    let buf: Buffer = Buffer.alloc(0);
    let busy = false;
    let closed = false;
    const close = () => {
      closed = true;
      out.destroy();
      socket.destroy();
    };
    socket.once('close', () => {
      closed = true;
      this.sockets.delete(socket);
    });
    socket.on('error', close);
    socket.setTimeout(IDLE_MS, close);
    socket.setNoDelay(true);

    // Every response to one request goes out in one write (a search's entries and its done): with
    // many small writes, Nagle's algorithm and the client's delayed ACK cost some 40 ms.
    const send = (id: number, ...ops: Buffer[]) => {
      if (!closed) out.write(Buffer.concat(ops.map((op) => encode(TAG.SEQUENCE, [encodeInteger(id), op]))));
    };
    const disconnect = (why: string) => {
      // RFC 4511 4.4.1: an unsolicited notification (message ID 0), then the connection ends.
      send(0, encode(OP.extendedResponse, [...ldapResult(RESULT.protocolError, '', why), encodeString(NOTICE_OF_DISCONNECTION, 0x8a)]));
      closed = true;
      out.end();
      const t = setTimeout(close, 1000);
      this.timers.add(t);
      t.unref();
    };

    const drain = () => {
      while (!busy && !closed) {
        let r: ReturnType<typeof readElement>;
        try {
          r = readElement(buf, 0, MAX_MESSAGE);
        } catch (err) {
          return disconnect(err instanceof BerError ? err.message : 'malformed message');
        }
        if (!r) return;
        buf = buf.subarray(r.end);
        try {
          this.handle(r.element, {
            send,
            close,
            pending: () => buf.length,
            later: (ms, fn) => {
              busy = true;
              const t = setTimeout(() => {
                this.timers.delete(t);
                busy = false;
                fn();
                drain();
              }, ms);
              this.timers.add(t);
            },
            startTls: () => {
              socket.removeListener('data', onData);
              const tls = new TLSSocket(socket, { isServer: true, secureContext: this.secureContext });
              tls.on('error', close);
              tls.on('data', onData);
              out = tls;
            },
            secure: () => out !== socket,
          });
        } catch (err) {
          return disconnect(err instanceof BerError ? `malformed message: ${err.message}` : 'malformed message');
        }
      }
    };
    const onData = (chunk: Buffer) => {
      if (closed) return;
      // At most one message and a bit more is kept: a client cannot grow the buffer without bound.
      if (buf.length + chunk.length > MAX_MESSAGE + 16) {
        buf = Buffer.alloc(0);
        return disconnect(`message larger than ${MAX_MESSAGE} bytes`);
      }
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      drain();
    };
    socket.on('data', onData);
  }

  private handle(message: BerElement, c: ConnectionOps): void {
    if (message.tag !== TAG.SEQUENCE) throw new BerError('not an LDAPMessage');
    const [idEl, op] = children(message.value);
    if (idEl?.tag !== TAG.INTEGER || !op) throw new BerError('not an LDAPMessage');
    const id = decodeInteger(idEl.value);
    if (id < 0 || id > 2_147_483_647) throw new BerError('message ID out of range');

    switch (op.tag) {
      case OP.bindRequest: {
        const [result, delay] = this.bind(op);
        const answer = () => c.send(id, encode(OP.bindResponse, result));
        if (delay > 0) c.later(delay, answer);
        else answer();
        return;
      }
      case OP.searchRequest:
        return c.send(id, ...this.search(op));
      case OP.unbindRequest:
        return c.close();
      case OP.abandonRequest:
        return;
      case OP.extendedRequest: {
        const name =
          children(op.value)
            .find((e) => e.tag === 0x80)
            ?.value.toString('utf8') ?? '';
        const respond = (code: number, diag: string) =>
          c.send(id, encode(OP.extendedResponse, [...ldapResult(code, '', diag), ...(name ? [encodeString(name, 0x8a)] : [])]));
        if (name !== START_TLS) return respond(RESULT.protocolError, `unsupported extended operation ${name.slice(0, 64)}`);
        if (c.secure()) return respond(RESULT.operationsError, 'TLS is already established');
        if (c.pending() > 0) return respond(RESULT.operationsError, 'requests were sent after StartTLS');
        respond(RESULT.success, '');
        return c.startTls();
      }
      default: {
        const response = READ_ONLY[op.tag];
        if (response === undefined) throw new BerError(`unknown operation 0x${op.tag.toString(16)}`);
        c.send(id, encode(response, ldapResult(RESULT.unwillingToPerform, '', 'the sandbox directory is read-only')));
      }
    }
  }

  /** The BindResponse content and how long to wait before sending it. */
  private bind(op: BerElement): [Buffer[], number] {
    const [versionEl, nameEl, auth] = children(op.value);
    if (versionEl?.tag !== TAG.INTEGER || nameEl?.tag !== TAG.OCTET_STRING || !auth) throw new BerError('malformed BindRequest');
    const delay = this.mode === 'slow' ? this.slowMs : 0;
    const version = decodeInteger(versionEl.value);
    if (version !== 3) return [ldapResult(RESULT.protocolError, '', 'only LDAPv3 is supported'), delay];
    if (auth.tag !== 0x80) return [ldapResult(RESULT.authMethodNotSupported, '', 'only simple authentication is supported'), delay];
    const name = nameEl.value.toString('utf8');
    const password = auth.value.toString('utf8');
    if (name === '' && password === '') return [ldapResult(RESULT.success, '', ''), delay];
    if (password === '') return [ldapResult(RESULT.unwillingToPerform, '', 'unauthenticated bind (DN with no password) disallowed'), delay];
    const entry = this.findUser(name);
    const refuse = (data: string) => [ldapResult(RESULT.invalidCredentials, '', adDiagnostic(data)), delay] as [Buffer[], number];
    if (!entry) return refuse('525');
    if (this.mode === 'locked') return refuse('775');
    const stored = entry.attributes.userPassword?.[0];
    if (stored === undefined || stored !== password) return refuse('52e');
    if (this.mode === 'expired') return refuse('532');
    return [ldapResult(RESULT.success, '', ''), delay];
  }

  /** An entry by DN, or a person by userPrincipalName (user@domain) as Active Directory allows. */
  private findUser(name: string): Entry | undefined {
    const byDn = this.byDn.get(normalizeDn(name));
    if (byDn) return byDn;
    const lower = name.toLowerCase();
    if (!lower.includes('@')) return undefined;
    for (const e of this.byDn.values()) if (e.attributes.userPrincipalName?.some((u) => u.toLowerCase() === lower)) return e;
    return undefined;
  }

  /** Encoded protocol operations: the entries, then SearchResultDone. */
  private search(op: BerElement): Buffer[] {
    const [baseEl, scopeEl, , sizeEl, , typesOnlyEl, filterEl, attrsEl] = children(op.value);
    if (
      baseEl?.tag !== TAG.OCTET_STRING ||
      scopeEl?.tag !== TAG.ENUMERATED ||
      sizeEl?.tag !== TAG.INTEGER ||
      typesOnlyEl?.tag !== TAG.BOOLEAN ||
      !filterEl ||
      attrsEl?.tag !== TAG.SEQUENCE
    ) {
      throw new BerError('malformed SearchRequest');
    }
    const done = (code: number, matched = '', diag = '') => encode(OP.searchResultDone, ldapResult(code, matched, diag));
    const base = normalizeDn(baseEl.value.toString('utf8'));
    const scope = decodeInteger(scopeEl.value);
    const sizeLimit = decodeInteger(sizeEl.value);
    const typesOnly = decodeBoolean(typesOnlyEl.value);
    const filter = parseFilter(filterEl, 0);
    const wanted = children(attrsEl.value).map((a) => a.value.toString('utf8').toLowerCase());
    if (scope < 0 || scope > 3) return [done(RESULT.protocolError, '', `unknown scope ${scope}`)];

    let candidates: Entry[];
    if (base === '' && scope === 0) {
      candidates = [
        {
          dn: '',
          attributes: {
            objectClass: ['top'],
            namingContexts: [SANDBOX_BASE_DN],
            supportedLDAPVersion: ['3'],
            supportedExtension: [START_TLS],
            vendorName: ['vakt sandbox'],
          },
        },
      ];
    } else {
      const baseEntry = this.byDn.get(base);
      if (!baseEntry) {
        let matched = parentDn(base);
        while (matched !== undefined && !this.byDn.has(matched)) matched = parentDn(matched);
        return [
          done(RESULT.noSuchObject, matched ? (this.byDn.get(matched) as Entry).dn : '', `no such object: ${baseEl.value.toString('utf8').slice(0, 200)}`),
        ];
      }
      candidates = [...this.byDn.entries()]
        .filter(([dn]) => {
          if (scope === 0) return dn === base;
          const below = dn.endsWith(`,${base}`);
          if (scope === 1) return below && parentDn(dn) === base;
          if (scope === 2) return dn === base || below;
          return below; // children
        })
        .map(([, e]) => e);
    }
    const matches = candidates.filter((e) => matchFilter(filter, e));
    const limit = Math.min(sizeLimit > 0 ? sizeLimit : MAX_ENTRIES, MAX_ENTRIES);
    const out = matches.slice(0, limit).map((e) => encodeEntry(e, wanted, typesOnly));
    out.push(matches.length > limit ? done(RESULT.sizeLimitExceeded) : done(RESULT.success));
    return out;
  }
}

interface ConnectionOps {
  send(id: number, ...ops: Buffer[]): void;
  close(): void;
  /** Bytes received and not yet handled. */
  pending(): number;
  /** Runs fn after ms, holding back the connection's next requests meanwhile. */
  later(ms: number, fn: () => void): void;
  startTls(): void;
  secure(): boolean;
}

/** LDAPResult's three fields (resultCode, matchedDN, diagnosticMessage). */
function ldapResult(code: number, matchedDn: string, diagnostic: string): Buffer[] {
  return [encodeInteger(code, TAG.ENUMERATED), encodeString(matchedDn), encodeString(diagnostic)];
}

function encodeEntry(e: Entry, wanted: string[], typesOnly: boolean): Buffer {
  const all = wanted.length === 0 || wanted.includes('*');
  const attrs = Object.entries(e.attributes).filter(([name]) => name.toLowerCase() !== 'userpassword' && (all || wanted.includes(name.toLowerCase())));
  return encode(OP.searchResultEntry, [
    encodeString(e.dn),
    encode(
      TAG.SEQUENCE,
      attrs.map(([name, values]) => encode(TAG.SEQUENCE, [encodeString(name), encode(TAG.SET, typesOnly ? [] : values.map((v) => encodeString(v)))])),
    ),
  ]);
}

/** An RFC 4511 Filter; unsupported items (extensible match) become one that never matches. */
export function parseFilter(el: BerElement, depth: number): Filter {
  if (depth > MAX_FILTER_DEPTH) throw new BerError('filter nested too deeply');
  const str = (b: BerElement | undefined) => {
    if (b?.tag !== TAG.OCTET_STRING && b?.tag !== 0x80 && b?.tag !== 0x81 && b?.tag !== 0x82) throw new BerError('malformed filter');
    return b.value.toString('utf8');
  };
  const ava = (): [string, string] => {
    const [a, v] = children(el.value);
    return [str(a).toLowerCase(), str(v)];
  };
  switch (el.tag) {
    case 0xa0:
    case 0xa1:
      return { op: el.tag === 0xa0 ? 'and' : 'or', items: children(el.value).map((c) => parseFilter(c, depth + 1)) };
    case 0xa2: {
      const [inner] = children(el.value);
      if (!inner) throw new BerError('empty not filter');
      return { op: 'not', item: parseFilter(inner, depth + 1) };
    }
    case 0xa3:
    case 0xa8: {
      const [attr, value] = ava();
      return { op: 'eq', attr, value };
    }
    case 0xa5:
    case 0xa6: {
      const [attr, value] = ava();
      return { op: el.tag === 0xa5 ? 'ge' : 'le', attr, value };
    }
    case 0xa4: {
      const [a, parts] = children(el.value);
      if (parts?.tag !== TAG.SEQUENCE) throw new BerError('malformed substrings filter');
      const f: Filter = { op: 'sub', attr: str(a).toLowerCase(), any: [] };
      for (const p of children(parts.value)) {
        if (p.tag === 0x80) f.initial = str(p);
        else if (p.tag === 0x81) f.any.push(str(p));
        else if (p.tag === 0x82) f.final = str(p);
        else throw new BerError('malformed substrings filter');
      }
      return f;
    }
    case 0x87:
      return { op: 'present', attr: el.value.toString('utf8').toLowerCase() };
    case 0xa9:
      return { op: 'never' };
    default:
      throw new BerError(`unknown filter 0x${el.tag.toString(16)}`);
  }
}

function values(e: Entry, attr: string): string[] {
  for (const [name, vals] of Object.entries(e.attributes)) if (name.toLowerCase() === attr) return vals;
  return [];
}

/** Matches without regard to case (every sandbox attribute is a caseIgnore string). */
export function matchFilter(f: Filter, e: Entry): boolean {
  switch (f.op) {
    case 'and':
      return f.items.every((i) => matchFilter(i, e));
    case 'or':
      return f.items.some((i) => matchFilter(i, e));
    case 'not':
      return !matchFilter(f.item, e);
    case 'present':
      return f.attr === 'objectclass' || values(e, f.attr).length > 0;
    case 'eq':
      return values(e, f.attr).some((v) => v.toLowerCase() === f.value.toLowerCase());
    case 'ge':
      return values(e, f.attr).some((v) => v.toLowerCase() >= f.value.toLowerCase());
    case 'le':
      return values(e, f.attr).some((v) => v.toLowerCase() <= f.value.toLowerCase());
    case 'sub':
      return values(e, f.attr).some((raw) => {
        const v = raw.toLowerCase();
        let at = 0;
        if (f.initial !== undefined) {
          if (!v.startsWith(f.initial.toLowerCase())) return false;
          at = f.initial.length;
        }
        for (const part of f.any) {
          const i = v.indexOf(part.toLowerCase(), at);
          if (i < 0) return false;
          at = i + part.length;
        }
        return f.final === undefined || (v.length - at >= f.final.length && v.endsWith(f.final.toLowerCase()));
      });
    case 'never':
      return false;
  }
}
