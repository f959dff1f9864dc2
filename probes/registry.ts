// The one list of probe kinds: kind name -> probe. Typed against config/kinds.ts, so a kind
// with a schema but no probe (or the reverse) does not compile.
import type { Kind, KindOptions } from '../config/kinds.js';
import { amqpProbe } from './amqp/probe.js';
import { dnsProbe } from './dns/probe.js';
import { httpProbe } from './http/probe.js';
import { ldapProbe } from './ldap/probe.js';
import { mllpProbe } from './mllp/probe.js';
import { oidcProbe } from './oidc/probe.js';
import { queueProbe } from './queue/probe.js';
import { tcpProbe } from './tcp/probe.js';
import type { Probe } from './types.js';

export const PROBES: { readonly [K in Kind]: Probe<KindOptions[K]> } = {
  tcp: tcpProbe,
  dns: dnsProbe,
  http: httpProbe,
  oidc: oidcProbe,
  ldap: ldapProbe,
  mllp: mllpProbe,
  queue: queueProbe,
  amqp: amqpProbe,
};
