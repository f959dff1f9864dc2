// The tcp kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { endpoint } from '../kit/target.js';
import { CONNECTION_VALUES, defineKind, SAMPLE_VALUES, NETWORK_REASONS } from '../kit/kind.js';
import { options, PHASES } from './options.js';

export default defineKind({
  name: 'tcp',
  summary:
    'A firewall path is open (or, with expect: blocked, stays closed): TCP connect, optional TLS handshake and send/expect, over one or several attempts per run.',
  target: { schema: endpoint, multiple: false },
  options,
  secretOptions: [],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'expect_mismatch', 'policy_open'],
  degradedReasons: ['sample_loss', 'cert_expiring'],
  values: {
    ...CONNECTION_VALUES,
    failed_due_to_regex: { metric: 'probe_failed_due_to_regex', help: '1 when the last run failed because the expected pattern did not match.' },
    ...SAMPLE_VALUES,
    connect_min_seconds: { help: 'Fastest connect of the last run, over its samples.' },
    connect_median_seconds: { help: 'Median connect of the last run, over its samples.' },
    connect_max_seconds: { help: 'Slowest connect of the last run, over its samples.' },
  },
  // A port that must stay closed and answers (policy_open) is open, not "Not reachable"; some
  // attempts of a run failing (sample_loss) is not "Slow".
  words: {
    en: { notAnswering: 'not reachable', reasons: { policy_open: 'Reachable — should be blocked', sample_loss: 'Some connections fail' } },
    sv: { notAnswering: 'går inte att nå', reasons: { policy_open: 'Går att nå — ska vara blockerad', sample_loss: 'Vissa anslutningar misslyckas' } },
    da: { notAnswering: 'kan ikke nås', reasons: { policy_open: 'Kan nås — skal være blokeret', sample_loss: 'Nogle forbindelser fejler' } },
    nb: { notAnswering: 'er ikke tilgjengelig', reasons: { policy_open: 'Kan nås — skal være blokkert', sample_loss: 'Noen tilkoblinger feiler' } },
    fi: {
      notAnswering: 'ei ole tavoitettavissa',
      reasons: { policy_open: 'Tavoitettavissa — pitäisi olla estetty', sample_loss: 'Osa yhteyksistä epäonnistuu' },
    },
  },
  // A port that must stay closed: "ok" means it is, and the page says so.
  variantWords: (o) =>
    o.expect === 'blocked'
      ? {
          en: { ok: 'Blocked as intended' },
          sv: { ok: 'Blockerad som avsett' },
          da: { ok: 'Blokeret som tilsigtet' },
          nb: { ok: 'Blokkert som tiltenkt' },
          fi: { ok: 'Estetty, kuten kuuluu' },
        }
      : undefined,
  example: `- name: ehr-via-fw-a
  title: Patient records (firewall path A)
  kind: tcp
  target: ehr.region.example:443
  tcp: { samples: 5, sampleSpacing: 200ms, connectTimeout: 2s, tls: { serverName: ehr.region.example } }`,
  load: () => import('./probe.js').then((m) => m.tcpProbe),
});
