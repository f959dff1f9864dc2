// The radius kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { CONNECTION_VALUES, defineKind } from '../kit/kind.js';
import { options, radiusTarget, PHASES } from './options.js';

export default defineKind({
  name: 'radius',
  summary:
    'A RADIUS server lets a device log in to the network (Wi-Fi, VPN): an Access-Request with PAP or CHAP and a Message-Authenticator, retransmitted within the timeout, the reply verified with the shared secret.',
  target: { schema: radiusTarget, multiple: false },
  options,
  secretOptions: ['password', 'sharedSecret'],
  phases: PHASES,
  // UDP: no connection to reset, no TLS; an ICMP port unreachable is refused.
  reasons: ['timeout', 'refused', 'unreachable', 'resolve', 'protocol', 'auth', 'radius_challenge', 'assertion'],
  degradedReasons: ['slow', 'retransmitted'],
  values: {
    ip_protocol: CONNECTION_VALUES.ip_protocol,
    dns_lookup_time_seconds: CONNECTION_VALUES.dns_lookup_time_seconds,
    radius_attempts: {
      metric: 'vakt_radius_attempts',
      help: 'Access-Requests the last run sent (1: answered at once; more: it had to retransmit).',
    },
  },
  // The clinical devices' network login: a refused login reads "Login refused" (the page's own
  // words for reason auth); a Challenge, a login that lands in the wrong network and a server that
  // needs a retransmit have words of their own.
  words: {
    en: {
      notAnswering: 'not letting devices log in to the network',
      reasons: {
        radius_challenge: 'Login asks for an extra step',
        assertion: 'Login gives the wrong network access',
        retransmitted: 'Answers only when asked again',
      },
    },
    sv: {
      notAnswering: 'släpper inte in enheter på nätverket',
      reasons: {
        radius_challenge: 'Inloggningen kräver ett extra steg',
        assertion: 'Inloggningen ger fel nätverksåtkomst',
        retransmitted: 'Svarar först när frågan upprepas',
      },
    },
    da: {
      notAnswering: 'lukker ikke enheder ind på netværket',
      reasons: {
        radius_challenge: 'Login kræver et ekstra trin',
        assertion: 'Login giver forkert netværksadgang',
        retransmitted: 'Svarer først, når der spørges igen',
      },
    },
    nb: {
      notAnswering: 'slipper ikke enheter inn på nettverket',
      reasons: {
        radius_challenge: 'Innloggingen krever et ekstra steg',
        assertion: 'Innloggingen gir feil nettverkstilgang',
        retransmitted: 'Svarer først når det spørres igjen',
      },
    },
    fi: {
      notAnswering: 'ei päästä laitteita verkkoon',
      reasons: {
        radius_challenge: 'Kirjautuminen vaatii lisävaiheen',
        assertion: 'Kirjautuminen antaa väärät verkko-oikeudet',
        retransmitted: 'Vastaa vasta uudelleen kysyttäessä',
      },
    },
  },
  example: `- name: wifi-clinical
  title: Wi-Fi login (clinical devices)
  kind: radius
  target: nps1.region.example
  secrets:
    probe_password: { env: VAKT_RADIUS_PROBE_PASSWORD }
    radius_secret: { env: VAKT_RADIUS_SHARED_SECRET }
  radius: { username: svc-vakt-wifi, password: probe_password, sharedSecret: radius_secret, nasIdentifier: vakt-probe }`,
  load: () => import('./probe.js').then((m) => m.radiusProbe),
});
