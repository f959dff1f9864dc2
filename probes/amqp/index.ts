// The amqp kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { endpoint } from '../kit/target.js';
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { options, PHASES } from './options.js';

export default defineKind({
  name: 'amqp',
  summary: 'A message broker carries a message end to end: a canary published with confirms and consumed back over AMQP 0-9-1.',
  target: { schema: endpoint, multiple: false },
  options,
  secretOptions: ['password'],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'auth', 'queue_missing'],
  degradedReasons: ['slow', 'cert_expiring'],
  values: { ...CONNECTION_VALUES },
  words: {
    en: { notAnswering: 'not working' },
    sv: { notAnswering: 'fungerar inte' },
    da: { notAnswering: 'virker ikke' },
    nb: { notAnswering: 'fungerer ikke' },
    fi: { notAnswering: 'ei toimi' },
  },
  example: `- name: broker-canary
  title: Integration broker
  kind: amqp
  target: mq.region.example:5672
  secrets: { mq_password: { env: VAKT_MQ_PASSWORD } }
  amqp: { vhost: integration, username: vakt, password: mq_password }`,
  load: () => import('./probe.js').then((m) => m.amqpProbe),
});
