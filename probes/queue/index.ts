// The queue kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { defineKind, NETWORK_REASONS, type CheckIssue } from '../kit/kind.js';
import { options, queueTarget, PHASES } from './options.js';

export default defineKind({
  name: 'queue',
  summary: 'An integration queue moves: depth, oldest message, consumers, drain and arrival rates read from a broker, an engine or a drop folder.',
  target: { schema: queueTarget, multiple: false },
  options,
  secretOptions: ['password'],
  checkRules: ({ targets, options }) => {
    const issues: CheckIssue[] = [];
    const target = targets[0];
    if (target === undefined) return issues;
    const folder = target.folder !== undefined;
    if (options.source === 'directory' && !folder) issues.push({ path: ['target'], message: 'expected an absolute folder path with source directory' });
    if (options.source !== 'directory' && folder) issues.push({ path: ['target'], message: `expected an http(s) URL with source ${options.source}` });
    if (options.source !== 'directory' && options.tls !== undefined && target.folder === undefined && !target.secure)
      issues.push({ path: ['tls'], message: 'expected tls only with an https:// target' });
    return issues;
  },
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'http_status', 'auth', 'body_too_large', 'queue_missing', 'queue_stopped', 'backlog', 'consumers'],
  degradedReasons: ['backlog_growing', 'partial'],
  values: {},
  // Per check and queue; absent when the source cannot tell, or the last run read nothing.
  readings: {
    list: 'queues',
    label: 'queue',
    gauges: {
      depth: {
        metric: 'vakt_queue_depth',
        help: 'Messages waiting in the queue at the last run (RabbitMQ: ready + unacknowledged; a folder: matching files).',
      },
      unacked: { metric: 'vakt_queue_unacknowledged', help: 'Messages delivered to consumers and not yet acknowledged, at the last run.' },
      oldestAgeSeconds: {
        metric: 'vakt_queue_oldest_message_age_seconds',
        help: 'Age of the oldest waiting message at the last run (when the source reports it).',
      },
      consumers: { metric: 'vakt_queue_consumers', help: 'Consumers attached to the queue at the last run.' },
      arrivalRate: { metric: 'vakt_queue_arrival_rate', help: 'Messages per second added to the queue between the last two runs.' },
      drainRate: { metric: 'vakt_queue_drain_rate', help: 'Messages per second removed from the queue between the last two runs.' },
      deliverRate: {
        metric: 'vakt_queue_deliver_rate',
        help: 'Messages per second handed to consumers between the last two runs, redeliveries included (RabbitMQ).',
      },
      undrainedSeconds: {
        metric: 'vakt_queue_undrained_seconds',
        help: 'How long the queue has held messages with nothing drained (0 while it drains or is empty).',
      },
      errors: { metric: 'vakt_queue_errored_messages', help: 'Messages the source counts as errored (Mirth channel ERROR statistic).' },
    },
  },
  // A queue backs up (backlog_growing); a read that stopped short (partial) or a refused login to
  // the source (auth) says nothing about the messages.
  words: {
    en: {
      notAnswering: 'not moving messages',
      states: { failing: 'Messages delayed, being checked', down: 'Messages not getting through' },
      reasons: { backlog_growing: 'Messages piling up', partial: 'Only partly checked', auth: 'Cannot be checked: access refused' },
    },
    sv: {
      notAnswering: 'för inte meddelanden vidare',
      states: { failing: 'Meddelanden försenade, kontrolleras', down: 'Meddelanden kommer inte fram' },
      reasons: { backlog_growing: 'Meddelanden hopar sig', partial: 'Bara delvis kontrollerad', auth: 'Kan inte kontrolleras: åtkomst nekad' },
    },
    da: {
      notAnswering: 'sender ikke beskeder videre',
      states: { failing: 'Beskeder forsinket, kontrolleres', down: 'Beskeder kommer ikke igennem' },
      reasons: { backlog_growing: 'Beskeder hober sig op', partial: 'Kun delvist kontrolleret', auth: 'Kan ikke kontrolleres: adgang nægtet' },
    },
    nb: {
      notAnswering: 'sender ikke meldinger videre',
      states: { failing: 'Meldinger forsinket, undersøkes', down: 'Meldinger kommer ikke fram' },
      reasons: { backlog_growing: 'Meldinger hoper seg opp', partial: 'Bare delvis kontrollert', auth: 'Kan ikke kontrolleres: tilgang nektet' },
    },
    fi: {
      notAnswering: 'ei välitä viestejä eteenpäin',
      states: { failing: 'Viestit viivästyvät, tarkistetaan', down: 'Viestit eivät mene perille' },
      reasons: { backlog_growing: 'Viestejä kasautuu', partial: 'Tarkistettu vain osittain', auth: 'Ei voida tarkistaa: pääsy evätty' },
    },
  },
  example: `- name: lab-results-queue
  title: Lab results to the patient record
  kind: queue
  target: https://mq.region.example:15671
  secrets: { mq_password: { env: VAKT_MQ_PASSWORD } }
  queue: { source: rabbitmq, queues: [lab.results], username: vakt, password: mq_password, maxDepth: 500, minConsumers: 1 }`,
  load: () => import('./probe.js').then((m) => m.queueProbe),
});
