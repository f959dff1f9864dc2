// The icmp kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { CONNECTION_VALUES, defineKind, SAMPLE_VALUES } from '../kit/kind.js';
import { icmpTarget, options, PHASES } from './options.js';

export default defineKind({
  name: 'icmp',
  summary: 'A host answers ping: echo requests, several per run, with the share lost and the round trip (min, median, max).',
  target: { schema: icmpTarget, multiple: false },
  options,
  secretOptions: [],
  phases: PHASES,
  reasons: ['timeout', 'unreachable', 'resolve', 'icmp_unavailable'],
  degradedReasons: ['sample_loss'],
  values: {
    ip_protocol: CONNECTION_VALUES.ip_protocol,
    dns_lookup_time_seconds: CONNECTION_VALUES.dns_lookup_time_seconds,
    ...SAMPLE_VALUES,
    icmp_rtt_min_seconds: { help: 'Shortest round trip of the last run.' },
    icmp_rtt_median_seconds: { help: 'Median round trip of the last run (also the rtt phase).' },
    icmp_rtt_max_seconds: { metric: 'vakt_icmp_rtt_max_seconds', help: 'Longest round trip of the last run: jitter and queueing show here first.' },
  },
  // Some echo requests lost (sample_loss) is not "Slow".
  words: {
    en: { notAnswering: 'not answering ping', reasons: { sample_loss: 'Some pings lost' } },
    sv: { notAnswering: 'svarar inte på ping', reasons: { sample_loss: 'Vissa ping försvinner' } },
    da: { notAnswering: 'svarer ikke på ping', reasons: { sample_loss: 'Nogle ping går tabt' } },
    nb: { notAnswering: 'svarer ikke på ping', reasons: { sample_loss: 'Noen ping går tapt' } },
    fi: { notAnswering: 'ei vastaa pingiin', reasons: { sample_loss: 'Osa pingeistä katoaa' } },
  },
  example: `- name: ping-fw-a
  title: Firewall A (ping)
  kind: icmp
  target: 10.20.0.1
  icmp: { count: 5, interval: 200ms, rttDegradedAbove: 20ms }`,
  load: () => import('./probe.js').then((m) => m.icmpProbe),
});
