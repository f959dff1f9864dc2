// The http kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { webTarget } from '../kit/target.js';
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { options, PHASES } from './options.js';

export default defineKind({
  name: 'http',
  summary: 'A web application works: one request or a login flow of several steps with cookies, variables and assertions.',
  target: { schema: webTarget, multiple: false },
  options,
  secretOptions: [],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'http_status', 'assertion', 'body_too_large', 'too_many_redirects'],
  degradedReasons: ['slow', 'cert_expiring'],
  phaseMetric: {
    name: 'probe_http_duration_seconds',
    help: 'Seconds spent in each phase of the last run, summed over its steps and redirects (resolve, connect, tls, processing, transfer).',
  },
  values: {
    ...CONNECTION_VALUES,
    http_status_code: { metric: 'probe_http_status_code', help: 'HTTP status of the final response of the last step that got one.' },
    http_content_length: { metric: 'probe_http_content_length', help: 'Body bytes read from that response.' },
    http_redirects: { metric: 'probe_http_redirects', help: 'Redirects followed in the last run, over all steps.' },
    http_ssl: { metric: 'probe_http_ssl', help: 'Whether the final response came over TLS (1) or not (0).' },
  },
  words: {
    en: { notAnswering: 'not working' },
    sv: { notAnswering: 'fungerar inte' },
    da: { notAnswering: 'virker ikke' },
    nb: { notAnswering: 'fungerer ikke' },
    fi: { notAnswering: 'ei toimi' },
  },
  example: `- name: ehr-web
  title: Patient records (web)
  kind: http
  target: https://ehr.region.example/
  http: { expect: { status: [200], bodyContains: [Cosmic] } }`,
  load: () => import('./probe.js').then((m) => m.httpProbe),
});
