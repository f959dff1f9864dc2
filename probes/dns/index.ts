// The dns kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { options, dnsServer, PHASES } from './options.js';

export default defineKind({
  name: 'dns',
  summary: 'A resolver answers a query as expected (rcode, records, consistency and SOA serials across several resolvers).',
  target: { schema: dnsServer, multiple: true },
  options,
  secretOptions: [],
  checkRules: ({ targets, options }) =>
    targets.some((t) => t.system) && options.type !== undefined && options.type !== 'A' && options.type !== 'AAAA'
      ? [{ path: ['type'], message: 'expected A or AAAA with target "system" (getaddrinfo resolves addresses only)' }]
      : [],
  phases: PHASES,
  reasons: [
    ...NETWORK_REASONS,
    'dns_nxdomain',
    'dns_servfail',
    'dns_refused',
    'dns_rcode',
    'dns_nodata',
    'dns_mismatch',
    'dns_inconsistent',
    'dns_serial_lag',
    'truncated',
  ],
  degradedReasons: ['partial'],
  phaseMetric: { name: 'probe_dns_duration_seconds', help: 'Seconds spent in each phase of the last DNS query to the target (resolve, connect, request).' },
  infoLabels: { dnsRcode: { metric: 'probe_dns_rcode_info', label: 'rcode', help: 'Response code of the last DNS reply from the target (value 1).' } },
  values: {
    ...CONNECTION_VALUES,
    dns_answer_rrs: { metric: 'probe_dns_answer_rrs', help: 'Records in the answer section of the last DNS reply.' },
    dns_authority_rrs: { metric: 'probe_dns_authority_rrs', help: 'Records in the authority section of the last DNS reply.' },
    dns_additional_rrs: {
      metric: 'probe_dns_additional_rrs',
      help: 'Records in the additional section of the last DNS reply (without the OPT pseudo-record).',
    },
    dns_query_succeeded: { metric: 'probe_dns_query_succeeded', help: 'Whether the last DNS query got a reply at all (1), whatever its rcode, or none (0).' },
    dns_serial: { metric: 'probe_dns_serial', help: 'SOA serial in the last reply from the target.' },
    dns_serial_lag: { metric: 'vakt_dns_serial_lag', help: "How far (RFC 1982) the target's SOA serial is behind the newest among the check's targets." },
    dns_tcp_fallback: { metric: 'vakt_dns_tcp_fallback', help: '1 when the last query was retried over TCP after a truncated UDP reply.' },
  },
  // One resolver of several failing (partial) is not "Slow".
  words: {
    en: { notAnswering: 'not answering', reasons: { partial: 'One or more name servers not answering' } },
    sv: { notAnswering: 'svarar inte', reasons: { partial: 'En eller flera namnservrar svarar inte' } },
    da: { notAnswering: 'svarer ikke', reasons: { partial: 'En eller flere navneservere svarer ikke' } },
    nb: { notAnswering: 'svarer ikke', reasons: { partial: 'En eller flere navnetjenere svarer ikke' } },
    fi: { notAnswering: 'ei vastaa', reasons: { partial: 'Yksi tai useampi nimipalvelin ei vastaa' } },
  },
  example: `- name: dns-ehr
  title: Name lookup of the patient record system
  kind: dns
  targets: [10.20.0.53, 10.20.0.54]
  dns: { name: ehr.region.local, type: A, quorum: 1, expect: { answer: { values: [10.20.1.5] } } }`,
  load: () => import('./probe.js').then((m) => m.dnsProbe),
});
