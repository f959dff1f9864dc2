// The mllp kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { endpoint } from '../kit/target.js';
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { HL7_ACK_CODES, options, PHASES } from './options.js';

export default defineKind({
  name: 'mllp',
  summary: 'An HL7 interface accepts a message: a synthetic ADT over MLLP, answered with an accepting ACK.',
  target: { schema: endpoint, multiple: false },
  options,
  secretOptions: [],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'ack_error', 'ack_reject', 'ack_mismatch', 'expect_mismatch'],
  degradedReasons: ['cert_expiring'],
  values: { ...CONNECTION_VALUES },
  tallies: {
    hl7AckCode: {
      metric: 'vakt_hl7_acks_total',
      help: 'HL7 ACKs received by mllp checks, by MSA-1 code (AA, AE, AR, CA, CE, CR, other).',
      label: 'code',
      values: HL7_ACK_CODES,
    },
  },
  words: {
    en: { notAnswering: 'not accepting messages', states: { degraded: 'Slow to accept messages', down: 'Not accepting messages' } },
    sv: { notAnswering: 'tar inte emot meddelanden', states: { degraded: 'Tar emot meddelanden långsamt', down: 'Tar inte emot meddelanden' } },
    da: { notAnswering: 'tager ikke imod beskeder', states: { degraded: 'Modtager beskeder langsomt', down: 'Modtager ikke beskeder' } },
    nb: { notAnswering: 'tar ikke imot meldinger', states: { degraded: 'Tar imot meldinger sakte', down: 'Tar ikke imot meldinger' } },
    fi: { notAnswering: 'ei ota vastaan viestejä', states: { degraded: 'Ottaa viestejä vastaan hitaasti', down: 'Ei ota vastaan viestejä' } },
  },
  example: `- name: lab-orders-hl7
  title: Lab orders interface
  kind: mllp
  target: hl7.region.example:6661
  mllp: { messageType: ADT^A08^ADT_A01, receivingApplication: LAB }`,
  load: () => import('./probe.js').then((m) => m.mllpProbe),
});
