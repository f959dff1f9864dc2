// The oidc kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { webTarget } from '../kit/target.js';
import { LOGIN_WORDS } from '../kit/words.js';
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS, AUTH_CODE_LABEL } from '../kit/kind.js';
import { options, PHASES } from './options.js';

export default defineKind({
  name: 'oidc',
  summary: 'An identity provider issues tokens: discovery, a client_credentials or password grant, and optionally a call with the token.',
  target: { schema: webTarget, multiple: false },
  options,
  secretOptions: ['clientSecret', 'password'],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'http_status', 'assertion', 'auth', 'body_too_large'],
  degradedReasons: ['cert_expiring'],
  infoLabels: AUTH_CODE_LABEL,
  values: {
    ...CONNECTION_VALUES,
    http_status_code: { metric: 'probe_http_status_code', help: 'HTTP status of the final response of the last step that got one.' },
  },
  words: LOGIN_WORDS,
  example: `- name: idp-service-token
  title: Single sign-on for integrations
  kind: oidc
  target: https://login.region.example/realms/clinical
  secrets: { client_secret: { env: VAKT_IDP_CLIENT_SECRET } }
  oidc: { clientId: vakt-probe, clientSecret: client_secret, scope: ehr.read }`,
  load: () => import('./probe.js').then((m) => m.oidcProbe),
});
