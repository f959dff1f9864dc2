// The ntp kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { ntpTarget, options, PHASES } from './options.js';

export default defineKind({
  name: 'ntp',
  summary:
    "A time server keeps the region's clocks together: SNTP offset, round trip, stratum, leap indicator and kiss-o'-death; Kerberos logins break at 5 minutes of skew.",
  target: { schema: ntpTarget, multiple: false },
  options,
  secretOptions: [],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'clock_skew', 'ntp_unsynchronised', 'ntp_kiss_of_death'],
  degradedReasons: ['clock_offset'],
  values: {
    ip_protocol: CONNECTION_VALUES.ip_protocol,
    dns_lookup_time_seconds: CONNECTION_VALUES.dns_lookup_time_seconds,
    ntp_offset_seconds: {
      metric: 'vakt_ntp_offset_seconds',
      help: "Offset of the time server's clock from the agent's (positive: the server is ahead), last run.",
    },
    ntp_rtt_seconds: { metric: 'vakt_ntp_rtt_seconds', help: "Round trip of the last run's judged request, without the server's own time." },
    ntp_stratum: { metric: 'vakt_ntp_stratum', help: "The time server's stratum in the last answer (0: a kiss-o'-death or unsynchronised)." },
    ntp_leap: { metric: 'vakt_ntp_leap', help: 'Leap indicator of the last answer (0 none, 1 or 2 a leap second today, 3 not synchronised).' },
    ntp_root_distance_seconds: {
      metric: 'vakt_ntp_root_distance_seconds',
      help: "The time server's root delay / 2 + root dispersion in the last answer: how uncertain its own time is.",
    },
  },
  // A clock drifting is clock_offset; a slow answer (degraded: slow) stays "Slow".
  words: {
    en: { notAnswering: 'not giving the right time', states: { down: 'Wrong time' }, reasons: { clock_offset: 'Clock drifting' } },
    sv: { notAnswering: 'ger inte rätt tid', states: { down: 'Fel tid' }, reasons: { clock_offset: 'Klockan glider' } },
    da: { notAnswering: 'giver ikke den rigtige tid', states: { down: 'Forkert tid' }, reasons: { clock_offset: 'Uret driver' } },
    nb: { notAnswering: 'gir ikke riktig tid', states: { down: 'Feil tid' }, reasons: { clock_offset: 'Klokken avviker' } },
    fi: { notAnswering: 'ei anna oikeaa aikaa', states: { down: 'Väärä aika' }, reasons: { clock_offset: 'Kello heittää' } },
  },
  example: `- name: time-dc1
  title: Time service (domain controller 1)
  kind: ntp
  target: dc1.region.example
  ntp: { samples: 3, offsetDegradedAbove: 500ms, maxOffset: 1m }`,
  load: () => import('./probe.js').then((m) => m.ntpProbe),
});
