// The queue kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { defineKind, NETWORK_REASONS, type CheckIssue } from '../kit/kind.js';
import { options, queueTarget } from './options.js';
import { queueProbe } from './probe.js';

export default defineKind({
  name: 'queue',
  summary: 'An integration queue moves: depth, oldest message, consumers, drain and arrival rates read from a broker, an engine or a drop folder.',
  target: { schema: queueTarget, multiple: false },
  options,
  secretOptions: ['password'],
  checkRules: ({ targets, options }) => {
    const issues: CheckIssue[] = [];
    const target = targets[0];
    if (target === undefined || typeof options.source !== 'string') return issues;
    const folder = target.startsWith('/');
    if (options.source === 'directory' && !folder) issues.push({ path: ['target'], message: 'expected an absolute folder path with source directory' });
    if (options.source !== 'directory' && folder) issues.push({ path: ['target'], message: `expected an http(s) URL with source ${String(options.source)}` });
    if (options.tls !== undefined && /^http:/i.test(target)) issues.push({ path: ['tls'], message: 'expected tls only with an https:// target' });
    return issues;
  },
  phases: queueProbe.phases,
  reasons: [...NETWORK_REASONS, 'http_status', 'auth', 'body_too_large', 'queue_missing', 'queue_stopped', 'backlog', 'consumers'],
  degradedReasons: ['backlog_growing', 'partial'],
  values: {},
  words: {
    en: {
      notAnswering: 'not moving messages',
      states: { degraded: 'Messages piling up', failing: 'Messages delayed, being checked', down: 'Messages not getting through' },
    },
    sv: {
      notAnswering: 'för inte meddelanden vidare',
      states: { degraded: 'Meddelanden hopar sig', failing: 'Meddelanden försenade, kontrolleras', down: 'Meddelanden kommer inte fram' },
    },
    da: {
      notAnswering: 'sender ikke beskeder videre',
      states: { degraded: 'Beskeder hober sig op', failing: 'Beskeder forsinket, kontrolleres', down: 'Beskeder kommer ikke igennem' },
    },
  },
  example: `- name: lab-results-queue
  title: Lab results to the patient record
  kind: queue
  target: https://mq.region.example:15671
  secrets: { mq_password: { env: VAKT_MQ_PASSWORD } }
  queue: { source: rabbitmq, queues: [lab.results], username: vakt, password: mq_password, maxDepth: 500, minConsumers: 1 }`,
  run: (ctx) => queueProbe.run(ctx),
});
